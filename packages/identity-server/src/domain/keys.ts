/**
 * The long-term signing key `ed25519:0` (generated once, persisted; Sydent's key id) and
 * the ephemeral key pairs of invites. Signing uses `node:crypto` synchronously (hot path).
 */
import { decodeBase64, encodeBase64, encodeBase64Url, signingBytes, addSignature } from "@beckon/protocol";
import { randomBytes as nodeRandomBytes } from "node:crypto";
import { ed25519KeyPairFromSeed, nodeCryptoProvider } from "@beckon/protocol/node";
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
 * A fresh ephemeral key pair: 32 random bytes (`randomBytes` when injected, for deterministic
 * tests) imported as a key to derive the public half. No key-generation job is involved: Node
 * 20's `generateKeyPairSync` + JWK export could deadlock (RELIABILITY.md DEF-F4), and the
 * asynchronous `generateKeyPair` used since cost ~100 µs of CPU per key against ~50 µs here.
 */
export function generateEphemeralKeyPair(randomBytes?: (n: number) => Uint8Array): EphemeralKeyPair {
  const seed = randomBytes ? randomBytes(32) : nodeRandomBytes(32);
  const pair = ed25519KeyPairFromSeed(seed);
  return { privateKey: pair.seed, publicKey: pair.publicKey };
}

/** Signs `obj` with an ephemeral seed (sign-ed25519), under the server name and key id `ed25519:0` as Sydent does. */
export function signWithSeed<T extends Record<string, unknown>>(obj: T, serverName: string, seed: Uint8Array): T & { signatures: Record<string, Record<string, string>> } {
  const sig = nodeCryptoProvider.ed25519SignSync(seed, signingBytes(obj));
  return addSignature(obj, serverName, LONG_TERM_KEY_ID, encodeBase64(sig));
}
