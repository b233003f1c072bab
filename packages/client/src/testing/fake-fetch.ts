/**
 * A scripted `fetch` for tests: each call is recorded and answered by the next handler (or by a
 * function of the request). Handlers may return a Response, throw, or hang until aborted.
 */
import type { FetchLike } from "../http/transport.js";

export interface RecordedCall {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
  signal: AbortSignal | undefined;
}

export type FetchHandler = (call: RecordedCall, index: number) => Response | Promise<Response>;

/** JSON response helper. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

/** A handler that never answers, but rejects like fetch when its signal aborts. */
export function hang(call: RecordedCall): Promise<Response> {
  return new Promise((_resolve, reject) => {
    const s = call.signal;
    if (!s) return;
    if (s.aborted) reject(s.reason);
    s.addEventListener("abort", () => reject(s.reason), { once: true });
  });
}

/** A fetch failure as undici reports it (`TypeError: fetch failed` with a coded cause). */
export function networkFailure(code: string): Error {
  const cause = Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });
  return new TypeError("fetch failed", { cause });
}

export class FakeFetch {
  readonly calls: RecordedCall[] = [];
  readonly #handlers: FetchHandler[];
  readonly #fallback: FetchHandler | undefined;

  constructor(handlers: FetchHandler[] | FetchHandler) {
    if (typeof handlers === "function") {
      this.#handlers = [];
      this.#fallback = handlers;
    } else {
      this.#handlers = [...handlers];
      this.#fallback = undefined;
    }
  }

  readonly fetch: FetchLike = async (url, init) => {
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => (headers[k] = v));
    let body: string | undefined;
    if (typeof init.body === "string") body = init.body;
    else if (init.body instanceof Uint8Array) body = new TextDecoder().decode(init.body);
    else if (init.body instanceof ReadableStream) body = await new Response(init.body).text();
    const call: RecordedCall = { url, method: init.method ?? "GET", headers, body, signal: init.signal ?? undefined };
    const index = this.calls.length;
    this.calls.push(call);
    const handler = this.#handlers.shift() ?? this.#fallback;
    if (!handler) throw new Error(`unexpected fetch #${index + 1}: ${call.method} ${url}`);
    return handler(call, index);
  };
}
