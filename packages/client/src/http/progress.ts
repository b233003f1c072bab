/**
 * Upload and download progress where the platform allows it: downloads are read through the
 * response body's stream reader; uploads are streamed in chunks where `fetch` accepts a
 * streamed request body (Node ≥ 18 with `duplex: "half"`), else reported at start and end.
 */

export interface Progress {
  /** Bytes sent or received so far. */
  readonly loaded: number;
  /** Total bytes, when known (`Content-Length` or the body's size). */
  readonly total: number | undefined;
}

export type ProgressListener = (p: Progress) => void;

/** Reads a response body to bytes, reporting progress after each chunk. */
export async function readBody(res: Response, onProgress?: ProgressListener): Promise<Uint8Array> {
  if (!onProgress || !res.body) return new Uint8Array(await res.arrayBuffer());
  const lengthHeader = res.headers.get("content-length");
  const total = lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  onProgress({ loaded, total });
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    onProgress({ loaded, total });
  }
  const out = new Uint8Array(loaded);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/** True where `fetch` takes a streamed request body over HTTP/1.1 (Node's undici; browsers need HTTP/2). */
export function canStreamUploads(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof proc?.versions?.node === "string" && typeof ReadableStream === "function";
}

/** A request body stream that reports progress as `fetch` pulls each chunk. */
export function progressStream(bytes: Uint8Array, onProgress: ProgressListener, chunkSize = 64 * 1024): ReadableStream<Uint8Array> {
  let offset = 0;
  const total = bytes.byteLength;
  return new ReadableStream<Uint8Array>({
    start() {
      onProgress({ loaded: 0, total });
    },
    pull(controller) {
      if (offset >= total) {
        controller.close();
        return;
      }
      const end = Math.min(total, offset + chunkSize);
      controller.enqueue(bytes.subarray(offset, end));
      offset = end;
      onProgress({ loaded: offset, total });
    },
  });
}
