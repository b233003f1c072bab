/**
 * Which IP addresses an outbound request must never reach unless explicitly allowed:
 * loopback, private, link-local, CGNAT, documentation, benchmarking, multicast, reserved, and
 * the IPv6 transitional ranges that tunnel to any IPv4 address (CVE-2021-21392: Synapse's
 * list missed `::ffff:0:0/96`, `2002::/16`, `64:ff9b::/96`; protocol-notes §9.7).
 * Pure functions, no I/O.
 */
import { isIP } from "node:net";

interface Range {
  bytes: number[];
  prefix: number;
  label: string;
}

function v4(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

function v6(text: string): number[] | undefined {
  let s = text;
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    const four = v4(s.slice(lastColon + 1));
    if (!four) return undefined;
    tail = four;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    for (const g of part.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0] ?? "");
  const rest = halves.length === 2 ? groups(halves[1] ?? "") : [];
  if (!head || !rest) return undefined;
  let all: number[];
  if (halves.length === 2) {
    if (head.length + rest.length > 7) return undefined;
    all = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  } else {
    if (head.length !== 8) return undefined;
    all = head;
  }
  const bytes = all.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** Parses an IPv4 or IPv6 address (brackets and a `%zone` are ignored) into its bytes. */
export function parseIpAddress(ip: string): { version: 4 | 6; bytes: number[] } | undefined {
  let s = ip.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  const kind = isIP(s);
  if (kind === 4) {
    const bytes = v4(s);
    return bytes && { version: 4, bytes };
  }
  if (kind === 6) {
    const bytes = v6(s);
    return bytes && { version: 6, bytes };
  }
  return undefined;
}

function range(cidr: string, label: string): Range {
  const [addr = "", prefix = ""] = cidr.split("/");
  const parsed = parseIpAddress(addr);
  if (!parsed) throw new Error(`bad range ${cidr}`);
  return { bytes: parsed.bytes, prefix: Number(prefix), label };
}

const V4_RANGES: Range[] = [
  range("0.0.0.0/8", "this network"),
  range("10.0.0.0/8", "private"),
  range("100.64.0.0/10", "carrier-grade NAT"),
  range("127.0.0.0/8", "loopback"),
  range("169.254.0.0/16", "link-local"),
  range("172.16.0.0/12", "private"),
  range("192.0.0.0/24", "IETF protocol assignments"),
  range("192.0.2.0/24", "documentation"),
  range("192.168.0.0/16", "private"),
  range("198.18.0.0/15", "benchmarking"),
  range("198.51.100.0/24", "documentation"),
  range("203.0.113.0/24", "documentation"),
  range("224.0.0.0/4", "multicast"),
  range("240.0.0.0/4", "reserved"), // includes 255.255.255.255 (broadcast)
];

const V6_RANGES: Range[] = [
  // ::/96 holds ::/128 (unspecified), ::1/128 (loopback) and the deprecated IPv4-compatible
  // addresses (::a.b.c.d); nothing public lives there.
  range("::/96", "unspecified, loopback or IPv4-compatible"),
  range("64:ff9b::/96", "NAT64 (transitional)"),
  range("64:ff9b:1::/48", "local-use NAT64 (transitional)"),
  range("100::/64", "discard-only"),
  range("2001::/23", "IETF protocol assignments (Teredo…)"),
  range("2001:db8::/32", "documentation"),
  range("2002::/16", "6to4 (transitional)"),
  range("fc00::/7", "unique local"),
  range("fe80::/10", "link-local"),
  range("fec0::/10", "site-local (deprecated)"),
  range("ff00::/8", "multicast"),
  range("3fff::/20", "documentation"),
];

// Everything outside 2000::/3 is reserved, local or special (IANA IPv6 address space):
// refusing it also covers IPv4-translated ::ffff:0:a.b.c.d and any range added later.
const V6_GLOBAL_UNICAST = range("2000::/3", "global unicast");

function inRange(bytes: number[], r: Range): boolean {
  let bits = r.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((bytes[i] ?? 0) & mask) !== ((r.bytes[i] ?? 0) & mask)) return false;
  }
  return true;
}

/**
 * Why `ip` is blocked (a short label), or undefined when it is a public address. Anything
 * that is not an IP address is blocked ("not an IP address"). IPv4-mapped IPv6 addresses
 * (`::ffff:0:0/96`) are judged by the IPv4 address they carry.
 */
export function blockedReason(ip: string): string | undefined {
  const parsed = parseIpAddress(ip);
  if (!parsed) return "not an IP address";
  let { bytes } = parsed;
  let ranges = parsed.version === 4 ? V4_RANGES : V6_RANGES;
  if (parsed.version === 6 && bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    bytes = bytes.slice(12);
    ranges = V4_RANGES;
  }
  const hit = ranges.find((r) => inRange(bytes, r))?.label;
  if (hit !== undefined || ranges === V4_RANGES) return hit;
  return inRange(bytes, V6_GLOBAL_UNICAST) ? undefined : "reserved (outside global unicast 2000::/3)";
}

/** True when an outbound request must not connect to `ip` (see {@link blockedReason}). */
export function isBlockedAddress(ip: string): boolean {
  return blockedReason(ip) !== undefined;
}
