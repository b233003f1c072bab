/**
 * The cryptography Matrix needs (ed25519 and SHA-256), behind a small interface so
 * that the same code runs on `node:crypto` in servers and on WebCrypto in browsers.
 *
 * Secret keys are the 32-byte ed25519 seed, as the spec's test vectors give them.
 *
 * @example
 * const provider = new WebCryptoProvider();
 * const seed = decodeBase64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1");
 * encodeBase64(await provider.ed25519PublicKey(seed)); // "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"
 */
import { decodeBase64 } from "./base64.js";

/** The ed25519 and SHA-256 operations Matrix needs; implement it to plug in another library. */
export interface CryptoProvider {
  /** The 32-byte public key for a 32-byte seed. */
  ed25519PublicKey(seed: Uint8Array): Promise<Uint8Array>;
  /** A 64-byte ed25519 signature of `message`. */
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Promise<Uint8Array>;
  /** Whether `signature` is a valid ed25519 signature of `message`; false (never throws) for malformed keys or signatures. */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
  /** SHA-256 digest. */
  sha256(data: Uint8Array): Promise<Uint8Array>;
  /** Cryptographically secure random bytes. */
  randomBytes(n: number): Uint8Array;
}

/** DER prefix that wraps a raw 32-byte ed25519 seed as PKCS#8 (RFC 8410). */
export const ED25519_PKCS8_PREFIX = new Uint8Array([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);
/** DER prefix that wraps a raw 32-byte ed25519 public key as SPKI (RFC 8410). */
export const ED25519_SPKI_PREFIX = new Uint8Array([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

/** `a` followed by `b`, in a new array. */
export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function hex(b: Uint8Array): string {
  let out = "";
  for (let i = 0; i < b.length; i++) out += (b[i]! < 16 ? "0" : "") + b[i]!.toString(16);
  return out;
}

function checkSeed(seed: Uint8Array): void {
  if (seed.length !== 32) throw new TypeError("an ed25519 seed is 32 bytes");
}

function bufferOf(b: Uint8Array): ArrayBuffer {
  // WebCrypto wants a BufferSource; copy to a standalone ArrayBuffer for views into shared memory.
  return b.slice().buffer;
}

interface SubtleLike {
  importKey: SubtleCrypto["importKey"];
  exportKey: SubtleCrypto["exportKey"];
  sign: SubtleCrypto["sign"];
  verify: SubtleCrypto["verify"];
  digest: SubtleCrypto["digest"];
}

/**
 * {@link CryptoProvider} over WebCrypto (`globalThis.crypto.subtle`, Ed25519 per the
 * Secure Curves spec): browsers and Node ≥ 20.
 */
export class WebCryptoProvider implements CryptoProvider {
  readonly #subtle: SubtleLike;
  readonly #getRandomValues: (a: Uint8Array) => Uint8Array;
  readonly #signKeys = new Map<string, Promise<CryptoKey>>();
  readonly #verifyKeys = new Map<string, Promise<CryptoKey>>();

  constructor(webCrypto: { subtle: SubtleLike; getRandomValues<T extends ArrayBufferView>(a: T): T } = globalThis.crypto) {
    if (!webCrypto?.subtle) throw new Error("WebCrypto is not available");
    this.#subtle = webCrypto.subtle;
    this.#getRandomValues = (a) => webCrypto.getRandomValues(a);
  }

  #privateKey(seed: Uint8Array, extractable: boolean): Promise<CryptoKey> {
    checkSeed(seed);
    return this.#subtle.importKey("pkcs8", bufferOf(concatBytes(ED25519_PKCS8_PREFIX, seed)), { name: "Ed25519" }, extractable, [
      "sign",
    ]);
  }

  async ed25519PublicKey(seed: Uint8Array): Promise<Uint8Array> {
    const key = await this.#privateKey(seed, true);
    const jwk = await this.#subtle.exportKey("jwk", key);
    if (typeof jwk.x !== "string") throw new Error("WebCrypto did not export the public key");
    return decodeBase64(jwk.x);
  }

  async ed25519Sign(seed: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
    // Keys are cached per seed: importing costs more than signing.
    const cacheKey = hex(seed);
    let key = this.#signKeys.get(cacheKey);
    if (!key) {
      key = this.#privateKey(seed, false);
      if (this.#signKeys.size > 64) this.#signKeys.clear();
      this.#signKeys.set(cacheKey, key);
    }
    const sig = await this.#subtle.sign({ name: "Ed25519" }, await key, bufferOf(message));
    return new Uint8Array(sig);
  }

  async ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    try {
      const cacheKey = hex(publicKey);
      let key = this.#verifyKeys.get(cacheKey);
      if (!key) {
        key = this.#subtle.importKey("raw", bufferOf(publicKey), { name: "Ed25519" }, false, ["verify"]);
        if (this.#verifyKeys.size > 256) this.#verifyKeys.clear();
        this.#verifyKeys.set(cacheKey, key);
        // A key WebCrypto refuses is not kept.
        key.catch(() => this.#verifyKeys.delete(cacheKey));
      }
      return await this.#subtle.verify({ name: "Ed25519" }, await key, bufferOf(signature), bufferOf(message));
    } catch {
      return false;
    }
  }

  async sha256(data: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(await this.#subtle.digest("SHA-256", bufferOf(data)));
  }

  randomBytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    // getRandomValues is limited to 65536 bytes a call.
    for (let i = 0; i < n; i += 65536) this.#getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
    return out;
  }
}

let defaultProvider: CryptoProvider | undefined;

/** The provider used when none is passed: WebCrypto unless {@link setDefaultCryptoProvider} chose another. */
export function getDefaultCryptoProvider(): CryptoProvider {
  defaultProvider ??= new WebCryptoProvider();
  return defaultProvider;
}

/** Replaces the default provider (servers install the `node:crypto` one from `@beckon/protocol/node`). */
export function setDefaultCryptoProvider(provider: CryptoProvider): void {
  defaultProvider = provider;
}
