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
 * `secretKey` is the 32-byte seed, raw or in base64. With a provider that can sign
 * synchronously (`node:crypto`), no extra asynchronous step is taken.
 *
 * @example
 * const signed = await signJson({ mxid: "@bob:hs", token: "abc" }, "is.example", "ed25519:0", seed);
 * signed.signatures["is.example"]["ed25519:0"]; // unpadded base64
 */
export function signJson<T extends Record<string, unknown>>(
  obj: T,
  entityName: string,
  keyId: string,
  secretKey: Uint8Array | string,
  provider: CryptoProvider = getDefaultCryptoProvider(),
): Promise<T & { signatures: Signatures }> {
  try {
    if (hasSyncSigning(provider)) return Promise.resolve(signJsonSync(obj, entityName, keyId, secretKey, provider));
    const message = signingBytes(obj);
    return provider.ed25519Sign(toKeyBytes(secretKey), message).then((sig) => addSignature(obj, entityName, keyId, encodeBase64(sig)));
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

/** A provider that can also sign and verify synchronously (`NodeCryptoProvider`). */
export interface SyncSigningProvider {
  ed25519SignSync(seed: Uint8Array, message: Uint8Array): Uint8Array;
  ed25519VerifySync(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

function hasSyncSigning(p: object): p is SyncSigningProvider {
  return typeof (p as Partial<SyncSigningProvider>).ed25519SignSync === "function" && typeof (p as Partial<SyncSigningProvider>).ed25519VerifySync === "function";
}

/**
 * {@link signJson} for servers' hot paths, with a synchronous provider (`nodeCryptoProvider`).
 *
 * @example
 * import { nodeCryptoProvider, signJsonSync } from "@beckon/protocol/node";
 * const event = signJsonSync(redactedEvent, "hs.example", "ed25519:a", seed, nodeCryptoProvider);
 */
export function signJsonSync<T extends Record<string, unknown>>(
  obj: T,
  entityName: string,
  keyId: string,
  secretKey: Uint8Array | string,
  provider: SyncSigningProvider,
): T & { signatures: Signatures } {
  const sig = provider.ed25519SignSync(toKeyBytes(secretKey), signingBytes(obj));
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

/** Decodes what verification needs; undefined when anything is malformed. */
function verificationInputs(
  obj: Record<string, unknown>,
  entityName: string,
  keyId: string,
  publicKey: Uint8Array | string,
): { key: Uint8Array; message: Uint8Array; sig: Uint8Array } | undefined {
  const sig = getSignature(obj, entityName, keyId);
  if (sig === undefined) return undefined;
  try {
    return { sig: decodeBase64(sig), key: toKeyBytes(publicKey), message: signingBytes(obj) };
  } catch {
    return undefined;
  }
}

/**
 * Whether `obj` carries a valid signature by `entityName`/`keyId` for `publicKey`
 * (raw bytes or base64 in either alphabet). Never throws for malformed input: returns false.
 *
 * @example
 * await verifyJsonSignature(signed, "domain", "ed25519:1", "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"); // true
 */
export function verifyJsonSignature(
  obj: Record<string, unknown>,
  entityName: string,
  keyId: string,
  publicKey: Uint8Array | string,
  provider: CryptoProvider = getDefaultCryptoProvider(),
): Promise<boolean> {
  if (hasSyncSigning(provider)) return Promise.resolve(verifyJsonSignatureSync(obj, entityName, keyId, publicKey, provider));
  const inputs = verificationInputs(obj, entityName, keyId, publicKey);
  if (!inputs) return Promise.resolve(false);
  return provider.ed25519Verify(inputs.key, inputs.message, inputs.sig);
}

/** {@link verifyJsonSignature} with a synchronous provider (`nodeCryptoProvider`). */
export function verifyJsonSignatureSync(
  obj: Record<string, unknown>,
  entityName: string,
  keyId: string,
  publicKey: Uint8Array | string,
  provider: SyncSigningProvider,
): boolean {
  const inputs = verificationInputs(obj, entityName, keyId, publicKey);
  return inputs !== undefined && provider.ed25519VerifySync(inputs.key, inputs.message, inputs.sig);
}
