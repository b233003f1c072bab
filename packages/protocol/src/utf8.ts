const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** UTF-8 bytes of a string. */
export function utf8Encode(s: string): Uint8Array {
  return encoder.encode(s);
}

/** Strict UTF-8 decoding: throws `TypeError` on invalid sequences. */
export function utf8Decode(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
