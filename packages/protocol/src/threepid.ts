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

export type Medium = "email" | "msisdn";

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
