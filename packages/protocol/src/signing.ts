/**
 * Signing and verifying JSON objects
 * (https://spec.matrix.org/v1.18/appendices/#signing-json).
 *
 * @example
 * const signed = await signJson({ one: 1, two: "Two" }, "domain", "ed25519:1", seed);
 * await verifyJsonSignature(signed, "domain", "ed25519:1", publicKey); // true
 */
import { decodeBase64, encodeBase64 } from "./base64.js";
import { encodeCanonicalJsonWithout, isJsonObject } from "./canonical-json.js";
import { getDefaultCryptoProvider, type CryptoProvider } from "./crypto.js";
import { utf8Encode } from "./utf8.js";

/** `signatures` as it appears on signed JSON: entity → key id → unpadded base64 signature. */
export type Signatures = Record<string, Record<string, string>>;

const NOT_SIGNED: ReadonlySet<string> = new Set(["signatures", "unsigned"]);

/** The bytes that are signed for `obj`: canonical JSON without `signatures` and `unsigned`. */
export function signingBytes(obj: Record<string, unknown>): Uint8Array {
  return utf8Encode(encodeCanonicalJsonWithout(obj, NOT_SIGNED));
}

function toKeyBytes(key: Uint8Array | string): Uint8Array {
  return typeof key === "string" ? decodeBase64(key) : key;
}

/**
 * Returns a copy of `obj` with an ed25519 signature by `entityName`/`keyId` added to
 * `signatures` (existing signatures are kept; `unsigned` is kept but not signed).
 * `secretKey` is the 32-byte seed, raw or in base64.
 */
export async function signJson<T extends Record<string, unknown>>(
  obj: T,
  entityName: string,
  keyId: string,
  secretKey: Uint8Array | string,
  provider: CryptoProvider = getDefaultCryptoProvider(),
): Promise<T & { signatures: Signatures }> {
  const sig = await provider.ed25519Sign(toKeyBytes(secretKey), signingBytes(obj));
  return addSignature(obj, entityName, keyId, encodeBase64(sig));
}

/** Merges one signature into a copy of `obj`'s `signatures`. */
export function addSignature<T extends Record<string, unknown>>(
  obj: T,
  entityName: string,
  keyId: string,
  signature: string,
): T & { signatures: Signatures } {
  const existing = isJsonObject(obj.signatures) ? (obj.signatures as Signatures) : {};
  const forEntity = isJsonObject(existing[entityName]) ? existing[entityName] : {};
  return { ...obj, signatures: { ...existing, [entityName]: { ...forEntity, [keyId]: signature } } };
}

/** The signature `obj` carries for `entityName`/`keyId`, if any. */
export function getSignature(obj: Record<string, unknown>, entityName: string, keyId: string): string | undefined {
  const sigs = obj.signatures;
  if (!isJsonObject(sigs)) return undefined;
  const forEntity = sigs[entityName];
  if (!isJsonObject(forEntity)) return undefined;
  const sig = forEntity[keyId];
  return typeof sig === "string" ? sig : undefined;
}

/**
 * Whether `obj` carries a valid signature by `entityName`/`keyId` for `publicKey`
 * (raw bytes or base64 in either alphabet). Never throws for malformed input: returns false.
 */
export async function verifyJsonSignature(
  obj: Record<string, unknown>,
  entityName: string,
  keyId: string,
  publicKey: Uint8Array | string,
  provider: CryptoProvider = getDefaultCryptoProvider(),
): Promise<boolean> {
  const sig = getSignature(obj, entityName, keyId);
  if (sig === undefined) return false;
  let sigBytes: Uint8Array;
  let keyBytes: Uint8Array;
  let message: Uint8Array;
  try {
    sigBytes = decodeBase64(sig);
    keyBytes = toKeyBytes(publicKey);
    message = signingBytes(obj);
  } catch {
    return false;
  }
  return provider.ed25519Verify(keyBytes, message, sigBytes);
}
