/**
 * A memo of successful ed25519 verifications (only a cache: a pure function's answers).
 *
 * A third-party invite's `signed` block is verified twice on its way into a room: by the
 * onbind/`third_party_signed` check against the invite's public keys, and again by the auth
 * rules when the member event is authorised. The second check finds the first's answer here.
 * Keyed by the public key, the signature and the SHA-256 of the message; only `true` answers
 * are kept (bounded, oldest out first).
 */
import { createHash } from "node:crypto";
import { nodeCryptoProvider } from "@beckon/protocol/node";

const MAX_ENTRIES = 4096;
const verified = new Set<string>();

function memoKey(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): string {
  const h = createHash("sha256").update(message).digest("base64");
  return `${Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString("base64")}|${Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString("base64")}|${h}`;
}

/** `ed25519VerifySync` of `nodeCryptoProvider`, answering repeats of a verified triple from memory. */
export function verifyEd25519Memo(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const key = memoKey(publicKey, message, signature);
  if (verified.has(key)) return true;
  const ok = nodeCryptoProvider.ed25519VerifySync(publicKey, message, signature);
  if (ok) {
    if (verified.size >= MAX_ENTRIES) {
      const oldest = verified.values().next();
      if (!oldest.done) verified.delete(oldest.value);
    }
    verified.add(key);
  }
  return ok;
}

/** A synchronous signing provider whose verifications go through {@link verifyEd25519Memo}. */
export const memoSigningProvider = {
  ed25519SignSync: (seed: Uint8Array, message: Uint8Array): Uint8Array => nodeCryptoProvider.ed25519SignSync(seed, message),
  ed25519VerifySync: verifyEd25519Memo,
};
