/**
 * Unpadded Base64, as the Matrix spec uses it everywhere
 * (https://spec.matrix.org/v1.18/appendices/#unpadded-base64).
 *
 * Encoders never emit padding. Decoders accept both the standard and the
 * URL-safe alphabet, padded or not (Sydent's ephemeral keys are URL-safe, its
 * long-term keys standard: protocol-notes §9.6).
 *
 * @example
 * encodeBase64(new Uint8Array([1, 2, 3])) // "AQID"
 * decodeBase64("AQI=") // Uint8Array [1, 2] (padding tolerated)
 * decodeBase64("-_8") // Uint8Array [251, 255] (URL-safe alphabet)
 */

const STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) {
  DECODE[STD.charCodeAt(i)] = i;
  DECODE[URL_SAFE.charCodeAt(i)] = i;
}

/** Two output characters per 12 input bits: halves the work of the encoder loop. */
function pairTable(alphabet: string): string[] {
  const t: string[] = new Array<string>(4096);
  for (let i = 0; i < 4096; i++) t[i] = alphabet[i >> 6]! + alphabet[i & 63]!;
  return t;
}
const PAIRS = new Map<string, string[]>();

function encodeWith(bytes: Uint8Array, alphabet: string): string {
  let pairs = PAIRS.get(alphabet);
  if (!pairs) PAIRS.set(alphabet, (pairs = pairTable(alphabet)));
  let out = "";
  const n = bytes.length;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += pairs[v >> 12]! + pairs[v & 4095]!;
  }
  const rest = n - i;
  if (rest === 1) {
    out += pairs[bytes[i]! << 4]!;
  } else if (rest === 2) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += pairs[v >> 12]! + alphabet[(v >> 6) & 63]!;
  }
  return out;
}

/** Unpadded standard Base64 (`+`, `/`). */
export function encodeBase64(bytes: Uint8Array): string {
  return encodeWith(bytes, STD);
}

/** Unpadded URL-safe Base64 (`-`, `_`), as used in room v4+ event IDs and lookup hashes. */
export function encodeBase64Url(bytes: Uint8Array): string {
  return encodeWith(bytes, URL_SAFE);
}

/**
 * Decodes Base64 in either alphabet, with or without `=` padding.
 * Throws `TypeError` on any other character, misplaced padding, or an impossible length.
 */
export function decodeBase64(input: string): Uint8Array {
  let end = input.length;
  let pad = 0;
  while (end > 0 && input.charCodeAt(end - 1) === 61 /* = */) {
    end--;
    pad++;
  }
  if (pad > 2 || (pad > 0 && (end + pad) % 4 !== 0)) throw new TypeError("invalid base64 padding");
  if (end % 4 === 1) throw new TypeError("invalid base64 length");
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < end; i++) {
    const c = input.charCodeAt(i);
    const v = c < 128 ? DECODE[c]! : -1;
    if (v < 0) throw new TypeError("invalid base64 character");
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  // Leftover bits should be zero in a canonical encoding; like most decoders (Python's, Node's)
  // we ignore them, and reject only impossible lengths (above).
  return o === out.length ? out : out.subarray(0, o);
}

/** True when `input` decodes as Base64 in either alphabet. */
export function isBase64(input: string): boolean {
  try {
    decodeBase64(input);
    return true;
  } catch {
    return false;
  }
}
