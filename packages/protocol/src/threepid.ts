/**
 * Third-party identifiers: normal forms and lookup hashing
 * (https://spec.matrix.org/v1.18/identity-service-api/#client-behaviour-1, MSC2265).
 *
 * @example
 * normalizeEmail("Carol@Example.ORG") // "carol@example.org"
 * lookupHash("carol@example.org", "email", "matrixrocks") // "8tKbIM8ECZCrzWaEDwSJrS5_l9pNMEEMYFGYNe1qx5M"
 */
import { encodeBase64Url } from "./base64.js";
import { sha256 } from "./sha256.js";
import { utf8Encode } from "./utf8.js";

/** The 3PID media Beckon knows. */
export type Medium = "email" | "msisdn";

/** True for `email` and `msisdn`. */
export function isMedium(s: unknown): s is Medium {
  return s === "email" || s === "msisdn";
}

/**
 * The one normal form in which email addresses are compared and hashed:
 * NFKC, then lower case (DECISIONS.md: JS has no casefold; for real addresses this
 * equals Sydent's `casefold()`). Surrounding whitespace is trimmed.
 */
export function normalizeEmail(address: string): string {
  return address.trim().normalize("NFKC").toLowerCase();
}

/** msisdn normal form: digits only, no `+`, spaces, dashes or brackets. */
export function normalizeMsisdn(address: string): string {
  return address.replace(/[\s+\-().]/g, "");
}

/** Normalises an address for its medium. */
export function normalizeThreepid(medium: Medium, address: string): string {
  return medium === "email" ? normalizeEmail(address) : normalizeMsisdn(address);
}

/** The string hashed for a lookup: `"<address> <medium> <pepper>"` (`none`: without the pepper). */
export function lookupHashInput(address: string, medium: string, pepper: string): string {
  return `${address} ${medium} ${pepper}`;
}

/** `sha256` lookup hash: unpadded URL-safe base64 of SHA-256(`"<address> <medium> <pepper>"`). */
export function lookupHash(address: string, medium: string, pepper: string): string {
  return encodeBase64Url(sha256(utf8Encode(lookupHashInput(address, medium, pepper))));
}

/** How many characters of each part {@link redactEmailAddress} reveals (Sydent's defaults: 3 and 3). */
export interface RedactionOptions {
  /** `email.third_party_invite_username_obfuscate_characters` in Sydent. Default 3. */
  localpartChars?: number;
  /** `email.third_party_invite_domain_obfuscate_characters` in Sydent. Default 3. */
  domainChars?: number;
}

/** Sydent's `redact`: reveal `n` leading characters (code points) and append `...`. */
function redactPart(s: string, n: number): string {
  const chars = Array.from(s);
  if (chars.length > n) return chars.slice(0, n).join("") + "...";
  // Short parts: Sydent reveals at most 3 characters of a part longer than 5, one of a part of 2–5, none of 1.
  if (chars.length > 5) return chars.slice(0, 3).join("") + "...";
  if (chars.length > 1) return chars[0] + "...";
  return "...";
}

/**
 * The display name of a third-party invite: the address with most of it hidden, as Sydent
 * builds it (spec-digest §2.3). The local part and the domain are redacted separately (split at
 * the first `@`); an address without `@` is redacted as a whole (Sydent fails with a 500 there).
 * Never put the full address in room state.
 *
 * @example
 * redactEmailAddress("carol@example.org") // "car...@exa..."
 * redactEmailAddress("foo@bar.org") // "f...@bar..."
 * redactEmailAddress("1234567890@1234567890.com", { localpartChars: 6, domainChars: 8 }) // "123456...@12345678..."
 */
export function redactEmailAddress(address: string, options: RedactionOptions = {}): string {
  const nLocal = options.localpartChars ?? 3;
  const nDomain = options.domainChars ?? 3;
  const at = address.indexOf("@");
  if (at < 0) return redactPart(address, nLocal);
  return redactPart(address.slice(0, at), nLocal) + "@" + redactPart(address.slice(at + 1), nDomain);
}
