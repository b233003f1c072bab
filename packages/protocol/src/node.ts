/**
 * Node-only entry point (`@beckon/protocol/node`): a {@link CryptoProvider} on
 * `node:crypto`, with synchronous variants for servers' hot paths.
 */
import * as nodeCrypto from "node:crypto";
import { ED25519_PKCS8_PREFIX, ED25519_SPKI_PREFIX, concatBytes, type CryptoProvider } from "./crypto.js";

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

let jwkImport = true;

/**
 * An ed25519 seed as a private `KeyObject`. Node imports a JWK `d` in ~40 µs here, a DER
 * PKCS#8 document in ~370 µs (OpenSSL 3's decoder lookup), so JWK is tried first. Node 20
 * requires `x` to be a string but derives the public half from `d` (the export shows it); if a
 * Node version refuses the empty `x`, DER is used from then on.
 */
export function ed25519PrivateKeyFromSeed(seed: Uint8Array): nodeCrypto.KeyObject {
  if (seed.length !== 32) throw new TypeError("an ed25519 seed is 32 bytes");
  const bytes = Buffer.from(seed.buffer, seed.byteOffset, seed.byteLength);
  if (jwkImport) {
    try {
      return nodeCrypto.createPrivateKey({ key: { kty: "OKP", crv: "Ed25519", d: bytes.toString("base64url"), x: "" }, format: "jwk" });
    } catch {
      jwkImport = false;
    }
  }
  return nodeCrypto.createPrivateKey({ key: Buffer.from(concatBytes(ED25519_PKCS8_PREFIX, seed)), format: "der", type: "pkcs8" });
}

/**
 * The key pair of a 32-byte seed as unpadded URL-safe base64 (JWK's form), for one-off keys:
 * nothing is cached (~50 µs here).
 */
export function ed25519KeyPairFromSeed(seed: Uint8Array): { seed: string; publicKey: string } {
  const jwk = ed25519PrivateKeyFromSeed(seed).export({ format: "jwk" });
  const d = Buffer.from(seed.buffer, seed.byteOffset, seed.byteLength).toString("base64url");
  if (typeof jwk.x !== "string" || jwk.x.length !== 43 || jwk.d !== d) throw new Error("ed25519 JWK export failed");
  return { seed: d, publicKey: jwk.x };
}

/**
 * {@link CryptoProvider} on `node:crypto`, caching key objects (importing a key costs more than
 * signing with it). The `*Sync` methods serve servers' hot paths.
 *
 * @example
 * import { nodeCryptoProvider, signJson, setDefaultCryptoProvider } from "@beckon/protocol/node";
 * setDefaultCryptoProvider(nodeCryptoProvider);
 * const signed = await signJson({ mxid, token }, "is.example", "ed25519:0", seed);
 */
export class NodeCryptoProvider implements CryptoProvider {
  readonly #privateKeys = new Map<string, nodeCrypto.KeyObject>();
  readonly #publicKeys = new Map<string, nodeCrypto.KeyObject>();

  /** Fast path for callers that pass the same seed array again (servers keep theirs). */
  readonly #bySeedObject = new WeakMap<Uint8Array, { copy: Uint8Array; key: nodeCrypto.KeyObject }>();

  #privateKey(seed: Uint8Array): nodeCrypto.KeyObject {
    if (seed.length !== 32) throw new TypeError("an ed25519 seed is 32 bytes");
    const hit = this.#bySeedObject.get(seed);
    // The array may have been overwritten since: compare with the copy taken then.
    if (hit && bytesEqual(hit.copy, seed)) return hit.key;
    const key = this.#privateKeyBySeedValue(seed);
    this.#bySeedObject.set(seed, { copy: seed.slice(), key });
    return key;
  }

  #privateKeyBySeedValue(seed: Uint8Array): nodeCrypto.KeyObject {
    const cacheKey = Buffer.from(seed.buffer, seed.byteOffset, seed.byteLength).toString("latin1");
    let key = this.#privateKeys.get(cacheKey);
    if (!key) {
      key = ed25519PrivateKeyFromSeed(seed);
      if (this.#privateKeys.size > 1024) this.#privateKeys.clear();
      this.#privateKeys.set(cacheKey, key);
    }
    return key;
  }

  #publicKey(publicKey: Uint8Array): nodeCrypto.KeyObject {
    const cacheKey = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString("latin1");
    let key = this.#publicKeys.get(cacheKey);
    if (!key) {
      key = nodeCrypto.createPublicKey({ key: Buffer.from(concatBytes(ED25519_SPKI_PREFIX, publicKey)), format: "der", type: "spki" });
      if (this.#publicKeys.size > 1024) this.#publicKeys.clear();
      this.#publicKeys.set(cacheKey, key);
    }
    return key;
  }

  ed25519PublicKeySync(seed: Uint8Array): Uint8Array {
    const der = nodeCrypto.createPublicKey(this.#privateKey(seed)).export({ format: "der", type: "spki" });
    return new Uint8Array(der.subarray(der.length - 32));
  }

  ed25519SignSync(seed: Uint8Array, message: Uint8Array): Uint8Array {
    return new Uint8Array(nodeCrypto.sign(null, message, this.#privateKey(seed)));
  }

  ed25519VerifySync(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    try {
      return nodeCrypto.verify(null, message, this.#publicKey(publicKey), signature);
    } catch {
      return false;
    }
  }

  sha256Sync(data: Uint8Array | string): Uint8Array {
    return new Uint8Array(nodeCrypto.createHash("sha256").update(data).digest());
  }

  async ed25519PublicKey(seed: Uint8Array): Promise<Uint8Array> {
    return this.ed25519PublicKeySync(seed);
  }
  async ed25519Sign(seed: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
    return this.ed25519SignSync(seed, message);
  }
  async ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    return this.ed25519VerifySync(publicKey, message, signature);
  }
  async sha256(data: Uint8Array): Promise<Uint8Array> {
    return this.sha256Sync(data);
  }
  randomBytes(n: number): Uint8Array {
    return new Uint8Array(nodeCrypto.randomBytes(n));
  }
}

/** One shared instance (its key caches are only caches). */
export const nodeCryptoProvider = new NodeCryptoProvider();

export * from "./index.js";
