/** Address grammar and Sydent's redacted display names. */
import { normalizeEmail } from "@beckon/protocol";
import { isValidMailAddress } from "../mail/index.js";

// One @, a local part and a domain without spaces, brackets, quotes, commas or further @s:
// refuses display-name forms ("Name <a@b>") and multiple @s, as Sydent's tests require.
const EMAIL = /^[^\s@<>()[\]",;:\\]{1,64}@[A-Za-z0-9\u00a0-\uffff](?:[A-Za-z0-9\u00a0-\uffff-]{0,62}[A-Za-z0-9\u00a0-\uffff])?(?:\.[A-Za-z0-9\u00a0-\uffff](?:[A-Za-z0-9\u00a0-\uffff-]{0,62}[A-Za-z0-9\u00a0-\uffff])?)*$/;

/**
 * Whether `address` (already normalised) is an email address we will mail: our grammar and the
 * outbox's recipient rules (no controls, bidi or line separators), so a request is refused with
 * 400 `M_INVALID_EMAIL` rather than failing when its mail is queued.
 */
export function isValidEmail(address: string): boolean {
  return address.length >= 3 && address.length <= 500 && EMAIL.test(address) && isValidMailAddress(address);
}

/** Normalises an email for storage, comparison and hashing (DECISIONS: NFKC + lower case). */
export function canonicalEmail(address: string): string {
  return normalizeEmail(address);
}

function redactPart(s: string, reveal: number): string {
  const chars = [...s];
  if (chars.length <= reveal) {
    if (chars.length > 5) return `${chars.slice(0, 3).join("")}...`;
    if (chars.length > 1) return `${chars[0]}...`;
    return "...";
  }
  return `${chars.slice(0, reveal).join("")}...`;
}

/**
 * Sydent's `redact_email_address`: `alice@example.com` → `ali...@exa...` with the default
 * reveal counts (3, 3); `1234567890@1234567890.com` → `123456...@12345678...` with (6, 8).
 */
export function redactEmail(address: string, usernameChars = 3, domainChars = 3): string {
  const at = address.indexOf("@");
  if (at < 0) return redactPart(address, usernameChars);
  return `${redactPart(address.slice(0, at), usernameChars)}@${redactPart(address.slice(at + 1), domainChars)}`;
}

/** Country calling codes for msisdn normalisation without a phone-number database (extend as needed). */
const CALLING_CODES: Record<string, string> = {
  US: "1", CA: "1", GB: "44", DE: "49", FR: "33", NL: "31", BE: "32", ES: "34", IT: "39", IE: "353", CH: "41", AT: "43",
  SE: "46", NO: "47", DK: "45", FI: "358", PL: "48", PT: "351", AU: "61", NZ: "64", JP: "81", IN: "91", BR: "55", ZA: "27",
};

/** E.164 digits (no `+`) of a phone number in a country, or undefined when it cannot be one. */
export function normaliseMsisdn(country: string, phoneNumber: string): string | undefined {
  const trimmed = phoneNumber.trim();
  const digits = trimmed.replace(/[\s\-().]/g, "");
  if (digits.startsWith("+")) {
    const rest = digits.slice(1);
    return /^[1-9]\d{6,14}$/.test(rest) ? rest : undefined;
  }
  if (!/^\d{4,15}$/.test(digits)) return undefined;
  const code = CALLING_CODES[country.toUpperCase()];
  if (!code) return undefined;
  const national = digits.replace(/^0+/, "");
  const full = code + national;
  return /^[1-9]\d{6,14}$/.test(full) ? full : undefined;
}
