/**
 * Making untrusted strings safe to put into a mail: header values without line breaks,
 * names without control or bidi-override characters, HTML escaping, Sydent-style truncation,
 * and a strict single-address check for recipients (protocol-notes §9 item 8,
 * CVE-2021-29432).
 */

/** Line breaks of every kind plus the other C0/C1 controls and DEL. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
/** Bidirectional overrides/isolates: they let a name display as something else. */
const BIDI = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/g;
const HAS_BIDI = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/;

/**
 * A value that goes into a header (subject, a custom header): every line break or other
 * control character becomes a space, so nothing can start a new header line.
 */
export function headerSafe(value: string, maxLength = 250): string {
  const cleaned = value.replace(CONTROL, " ").replace(BIDI, "").replace(/ {2,}/g, " ").trim();
  return truncateCodePoints(cleaned, maxLength, maxLength - 1);
}

/** A user-chosen name or other text shown in a mail body: one line, no controls or bidi overrides. */
export function textSafe(value: string): string {
  return value.replace(CONTROL, " ").replace(BIDI, "");
}

/** HTML-escapes text for element content and quoted attribute values. */
export function escapeHtml(value: string): string {
  return value
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/**
 * Sydent's truncation (store_invite_servlet.py), counted in code points as Python does:
 * a string longer than `max` becomes its first `keep` code points plus "…".
 */
export function truncateCodePoints(value: string, max: number, keep: number): string {
  const cps = Array.from(value);
  return cps.length > max ? `${cps.slice(0, keep).join("")}…` : value;
}

/** Sydent's invite truncation: display names over 20 code points keep 19, room names over 30 keep 25. */
export function truncateDisplayName(value: string): string {
  return truncateCodePoints(value, 20, 19);
}
export function truncateRoomName(value: string): string {
  return truncateCodePoints(value, 30, 25);
}

/** Sydent's limit on address length (MAX_EMAIL_ADDRESS_LENGTH). */
export const MAX_MAIL_ADDRESS_LENGTH = 500;

// Characters that may never appear in a recipient: whitespace, controls, and everything that
// separates, quotes or comments addresses in a header (so one string is exactly one address).
const FORBIDDEN_IN_ADDRESS = /[\s\u0000-\u001f\u007f-\u009f\u2028\u2029<>()[\]\\,;:"]/u;

/**
 * True for one plain addr-spec `local@domain` (no display name, comments, quoting, second
 * address, whitespace or control characters): what the outbox accepts as a recipient. This is
 * about safety (nothing can reach another header or recipient), not RFC pedantry: single-label
 * domains (`bob@localhost`) and internationalised addresses pass.
 */
export function isValidMailAddress(address: string): boolean {
  if (address.length === 0 || address.length > MAX_MAIL_ADDRESS_LENGTH) return false;
  if (FORBIDDEN_IN_ADDRESS.test(address) || HAS_BIDI.test(address)) return false;
  const at = address.indexOf("@");
  if (at <= 0 || at !== address.lastIndexOf("@") || at === address.length - 1) return false;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (Array.from(local).length > 64) return false;
  return domain.split(".").every((l) => l.length > 0 && Array.from(l).length <= 63 && !l.startsWith("-") && !l.endsWith("-"));
}

/** Parses `addr` or `Name <addr>` (the configured sender); undefined when it is neither. */
export function parseSenderAddress(value: string): { name?: string; address: string } | undefined {
  const v = value.trim();
  if (isValidMailAddress(v)) return { address: v };
  const m = /^(.*)<([^<>]+)>$/s.exec(v);
  if (!m) return undefined;
  const address = (m[2] ?? "").trim();
  if (!isValidMailAddress(address)) return undefined;
  const name = headerSafe((m[1] ?? "").trim().replace(/^"(.*)"$/s, "$1"), 100);
  return name ? { name, address } : { address };
}
