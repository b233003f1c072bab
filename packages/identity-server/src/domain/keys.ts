/**
 * The long-term signing key `ed25519:0` (generated once, persisted; Sydent's key id) and
 * the ephemeral key pairs of invites. Signing uses `node:crypto` synchronously (hot path).
 */
import { decodeBase64, encodeBase64, encodeBase64Url, signingBytes, addSignature } from "@beckon/protocol";
import { generateKeyPair } from "node:crypto";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import type { SigningKeyStore } from "../storage/index.js";

export const LONG_TERM_KEY_ID = "ed25519:0";

export interface KeyRing {
  readonly serverName: string;
  readonly keyId: string;
  /** Unpadded standard base64 (the form `pubkey/isvalid` and store-invite use). */
  readonly publicKey: string;
  /** Adds the long-term signature under the server name. */
  sign<T extends Record<string, unknown>>(obj: T): T & { signatures: Record<string, Record<string, string>> };
  /** Whether `publicKey` (either base64 alphabet, padded or not) is the long-term key. */
  isLongTermKey(publicKey: string): boolean;
}

/** Loads `ed25519:0`, creating it on first start (first writer wins when several processes start). */
export async function loadKeyRing(store: SigningKeyStore, serverName: string, now: number, randomBytes: (n: number) => Uint8Array): Promise<KeyRing> {
  let stored = await store.get(LONG_TERM_KEY_ID);
  if (!stored) stored = await store.insertIfAbsent(LONG_TERM_KEY_ID, encodeBase64(randomBytes(32)), now);
  const seed = decodeBase64(stored.seed);
  if (seed.length !== 32) throw new Error("stored signing key is not a 32-byte ed25519 seed");
  const pub = nodeCryptoProvider.ed25519PublicKeySync(seed);
  const publicKey = encodeBase64(pub);
  return {
    serverName,
    keyId: LONG_TERM_KEY_ID,
    publicKey,
    sign(obj) {
      const sig = nodeCryptoProvider.ed25519SignSync(seed, signingBytes(obj));
      return addSignature(obj, serverName, LONG_TERM_KEY_ID, encodeBase64(sig));
    },
    isLongTermKey(candidate) {
      const bytes = decodeKey(candidate);
      return bytes !== undefined && bytes.length === pub.length && bytes.every((b, i) => b === pub[i]);
    },
  };
}

/** Decodes a key in either alphabet; undefined when malformed. */
export function decodeKey(s: string): Uint8Array | undefined {
  try {
    return decodeBase64(s.trim());
  } catch {
    return undefined;
  }
}

/** The canonical stored form of an ephemeral public key (URL-safe, unpadded), or undefined when malformed. */
export function canonicalEphemeralKey(s: string): string | undefined {
  const bytes = decodeKey(s);
  return bytes && bytes.length === 32 ? encodeBase64Url(bytes) : undefined;
}

export interface EphemeralKeyPair {
  /** URL-safe unpadded base64 of the seed (goes only into the invite mail's sign URL). */
  privateKey: string;
  /** URL-safe unpadded base64 (Sydent's form). */
  publicKey: string;
}

/**
 * A fresh ephemeral key pair. node:crypto's own key generation with a JWK export is ~10× faster
 * here than importing a random seed as DER (store-invite's hot path); JWK `d`/`x` are already
 * unpadded URL-safe base64. `randomBytes` is used instead when injected (deterministic tests).
 *
 * Asynchronous on purpose, with the export inside the callback: `generateKeyPairSync` followed
 * by a JWK export deadlocks Node 20 now and then — the export holds the key's mutex while it
 * allocates, a garbage collection then destroys the finished (unreferenced) key-generation job,
 * whose destructor takes the same mutex, and the main thread waits forever (seen here under a
 * store-invite load, and in a plain loop within 20 000 keys). In the callback the job is still
 * referenced. The generation also runs on libuv's thread pool instead of the event loop.
 */
export async function generateEphemeralKeyPair(randomBytes?: (n: number) => Uint8Array): Promise<EphemeralKeyPair> {
  if (randomBytes) {
    const seed = randomBytes(32);
    return { privateKey: encodeBase64Url(seed), publicKey: encodeBase64Url(nodeCryptoProvider.ed25519PublicKeySync(seed)) };
  }
  return new Promise<EphemeralKeyPair>((resolve, reject) => {
    generateKeyPair("ed25519", {}, (err, _publicKey, privateKey) => {
      if (err) {
        reject(err);
        return;
      }
      const jwk = privateKey.export({ format: "jwk" });
      if (typeof jwk.d !== "string" || typeof jwk.x !== "string") reject(new Error("ed25519 JWK export failed"));
      else resolve({ privateKey: jwk.d, publicKey: jwk.x });
    });
  });
}

/** Signs `obj` with an ephemeral seed (sign-ed25519), under the server name and key id `ed25519:0` as Sydent does. */
export function signWithSeed<T extends Record<string, unknown>>(obj: T, serverName: string, seed: Uint8Array): T & { signatures: Record<string, Record<string, string>> } {
  const sig = nodeCryptoProvider.ed25519SignSync(seed, signingBytes(obj));
  return addSignature(obj, serverName, LONG_TERM_KEY_ID, encodeBase64(sig));
}
