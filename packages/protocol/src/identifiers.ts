/**
 * Matrix identifiers (https://spec.matrix.org/v1.18/appendices/#identifier-grammar),
 * parsed once at the edge into branded string types.
 *
 * @example
 * const user = parseUserId("@alice:example.org"); // UserId
 * userIdServerName(user); // "example.org"
 * parseServerName("[::1]:8448"); // { host: "[::1]", port: 8448 }
 */

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

export type UserId = Brand<string, "UserId">;
export type RoomId = Brand<string, "RoomId">;
export type EventId = Brand<string, "EventId">;
export type RoomAlias = Brand<string, "RoomAlias">;
export type ServerName = Brand<string, "ServerName">;

/** Thrown when a string is not a valid identifier of the expected kind. */
export class IdentifierError extends TypeError {
  override name = "IdentifierError";
}

/** Identifiers are limited to 255 bytes of UTF-8, sigil and server name included. */
const MAX_ID_BYTES = 255;

/** UTF-8 length of `s` without allocating. */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

export interface ParsedServerName {
  /** DNS name, dotted IPv4, or bracketed IPv6 (`[::1]`). */
  host: string;
  port?: number;
  kind: "dns" | "ipv4" | "ipv6";
}

const DNS_NAME = /^[A-Za-z0-9.-]{1,255}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function isIpv6(s: string): boolean {
  // RFC 4291 text forms, including an embedded IPv4 tail and one "::".
  if (s.length < 2 || s.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(s)) return false;
  let head = s;
  let groupsForV4 = 0;
  const lastColon = s.lastIndexOf(":");
  const tail = s.slice(lastColon + 1);
  if (tail.includes(".")) {
    if (!IPV4.test(tail)) return false;
    head = s.slice(0, lastColon + 1) + "0";
    groupsForV4 = 1; // the IPv4 tail is two groups; "0" stands for one, count one more
  }
  const dbl = head.split("::");
  if (dbl.length > 2) return false;
  const groups = (part: string): string[] | null => {
    if (part === "") return [];
    const g = part.split(":");
    return g.every((x) => /^[0-9A-Fa-f]{1,4}$/.test(x)) ? g : null;
  };
  if (dbl.length === 2) {
    const a = groups(dbl[0]!);
    const b = groups(dbl[1]!);
    if (!a || !b) return false;
    return a.length + b.length + groupsForV4 <= 7;
  }
  const all = groups(head);
  return all !== null && all.length + groupsForV4 === 8;
}

/** Parses `host[:port]` per the server-name grammar; throws {@link IdentifierError}. */
export function parseServerNameParts(s: string): ParsedServerName {
  let host: string;
  let portText: string | undefined;
  let kind: ParsedServerName["kind"];
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0) throw new IdentifierError("unterminated IPv6 literal");
    host = s.slice(0, end + 1);
    if (!isIpv6(s.slice(1, end))) throw new IdentifierError("invalid IPv6 literal");
    const rest = s.slice(end + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) throw new IdentifierError("junk after IPv6 literal");
      portText = rest.slice(1);
    }
    kind = "ipv6";
  } else {
    const colon = s.indexOf(":");
    host = colon < 0 ? s : s.slice(0, colon);
    if (colon >= 0) portText = s.slice(colon + 1);
    if (IPV4.test(host)) kind = "ipv4";
    else if (DNS_NAME.test(host) && !host.startsWith(".") && !host.endsWith(".") && !host.includes("..")) kind = "dns";
    else throw new IdentifierError("invalid host name");
  }
  const out: ParsedServerName = { host, kind };
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText)) throw new IdentifierError("invalid port");
    const port = Number(portText);
    if (port < 1 || port > 65535) throw new IdentifierError("port out of range");
    out.port = port;
  }
  return out;
}

/** Validates a server name and brands it. */
export function parseServerName(s: string): ServerName {
  parseServerNameParts(s);
  return s as ServerName;
}

/** Whether `s` is a valid server name (`isValidServerName("localhost:8008")` → true). */
export function isValidServerName(s: string): s is ServerName {
  try {
    parseServerNameParts(s);
    return true;
  } catch {
    return false;
  }
}

function splitSigilId(s: string, sigil: string, what: string): { localpart: string; serverName: ServerName } {
  if (typeof s !== "string" || !s.startsWith(sigil)) throw new IdentifierError(`${what} must start with ${sigil}`);
  if (utf8Length(s) > MAX_ID_BYTES) throw new IdentifierError(`${what} is longer than ${MAX_ID_BYTES} bytes`);
  const colon = s.indexOf(":");
  if (colon < 0) throw new IdentifierError(`${what} has no server name`);
  const localpart = s.slice(1, colon);
  const serverName = parseServerName(s.slice(colon + 1));
  return { localpart, serverName };
}

/** The user-ID localpart characters the spec allows today. */
export const STRICT_LOCALPART = /^[a-z0-9._=\-/+]+$/;
/** Historical localparts: any printable ASCII except `:` (the spec's compatibility rule). */
export const HISTORICAL_LOCALPART = /^[\x21-\x39\x3b-\x7e]+$/;

/**
 * Parses a user ID. Accepts historical localparts (printable ASCII but `:`) unless
 * `strict`, as the spec asks servers to for IDs they did not create.
 */
export function parseUserId(s: string, options: { strict?: boolean } = {}): UserId {
  const { localpart } = splitSigilId(s, "@", "user ID");
  const re = options.strict ? STRICT_LOCALPART : HISTORICAL_LOCALPART;
  if (localpart === "" || !re.test(localpart)) throw new IdentifierError("invalid user ID localpart");
  return s as UserId;
}

/** Whether `s` is a valid user ID (`isValidUserId("@Bob:x")` → true, false with `strict`). */
export function isValidUserId(s: unknown, options: { strict?: boolean } = {}): s is UserId {
  if (typeof s !== "string") return false;
  try {
    parseUserId(s, options);
    return true;
  } catch {
    return false;
  }
}

/** The localpart of a valid user ID. */
export function userIdLocalpart(u: UserId): string {
  return u.slice(1, u.indexOf(":"));
}

/** The server name of a valid user ID, room ID or alias. */
export function idServerName(id: UserId | RoomId | RoomAlias): ServerName {
  return id.slice(id.indexOf(":") + 1) as ServerName;
}
/** Alias of {@link idServerName} for user IDs. */
export const userIdServerName = idServerName;

/** Parses a room ID (`!opaque:server`, room versions 1–11). */
export function parseRoomId(s: string): RoomId {
  const { localpart } = splitSigilId(s, "!", "room ID");
  if (localpart === "" || !/^[\x21-\x7e]+$/.test(localpart)) throw new IdentifierError("invalid room ID");
  return s as RoomId;
}

/** Whether `s` is a valid room ID (`!opaque:server`). */
export function isValidRoomId(s: unknown): s is RoomId {
  if (typeof s !== "string") return false;
  try {
    parseRoomId(s);
    return true;
  } catch {
    return false;
  }
}

/** Parses a room alias (`#localpart:server`). */
export function parseRoomAlias(s: string): RoomAlias {
  const { localpart } = splitSigilId(s, "#", "room alias");
  if (localpart === "" || /[\s:\x00-\x1f]/.test(localpart)) throw new IdentifierError("invalid room alias");
  return s as RoomAlias;
}

/** Whether `s` is a valid room alias (`#name:server`). */
export function isValidRoomAlias(s: unknown): s is RoomAlias {
  if (typeof s !== "string") return false;
  try {
    parseRoomAlias(s);
    return true;
  } catch {
    return false;
  }
}

/**
 * Parses an event ID: `$` + 43 characters of unpadded URL-safe base64 (room v4+),
 * or the older `$opaque:server` form.
 */
export function parseEventId(s: string): EventId {
  if (typeof s !== "string" || !s.startsWith("$") || utf8Length(s) > MAX_ID_BYTES) throw new IdentifierError("invalid event ID");
  if (/^\$[A-Za-z0-9_-]{43}$/.test(s)) return s as EventId;
  const { localpart } = splitSigilId(s, "$", "event ID");
  if (localpart === "" || !/^[\x21-\x7e]+$/.test(localpart)) throw new IdentifierError("invalid event ID");
  return s as EventId;
}

/** Whether `s` is a valid event ID (room v4+ hash form, or the older `$opaque:server`). */
export function isValidEventId(s: unknown): s is EventId {
  if (typeof s !== "string") return false;
  try {
    parseEventId(s);
    return true;
  } catch {
    return false;
  }
}

/** A signing key ID split into its algorithm and version (`ed25519:abc` → `ed25519`, `abc`). */
export interface KeyIdParts {
  algorithm: string;
  version: string;
}

/**
 * Parses a signing key ID `<algorithm>:<version>`, version characters `[a-zA-Z0-9_]`
 * (https://spec.matrix.org/v1.18/appendices/#signing-key). Throws {@link IdentifierError}.
 *
 * @example
 * parseKeyId("ed25519:0") // { algorithm: "ed25519", version: "0" }
 */
export function parseKeyId(s: string): KeyIdParts {
  const m = typeof s === "string" ? /^([a-z0-9_]{1,32}):([a-zA-Z0-9_]{1,255})$/.exec(s) : null;
  if (!m) throw new IdentifierError("invalid key ID");
  return { algorithm: m[1]!, version: m[2]! };
}

/** Whether `s` is an ed25519 key ID (`ed25519:<version>`). */
export function isEd25519KeyId(s: unknown): s is string {
  return typeof s === "string" && /^ed25519:[a-zA-Z0-9_]{1,255}$/.test(s);
}
