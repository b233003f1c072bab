/**
 * Which identity servers the homeserver talks to, and where (DECISIONS.md "Which identity
 * servers the homeserver talks to"): an `id_server` in the operator's map goes to its mapped
 * base URL; otherwise, unless `only_mapped` is set, to `https://<id_server>` — and only when
 * it is a public name or address. Everything else is refused with 400 `M_SERVER_NOT_TRUSTED`
 * before any connection. Names that resolve to private addresses are refused by the guarded
 * outbound client at DNS time (still before connecting); the caller maps its "blocked" error
 * to the same errcode.
 */
import { BlockList, isIP } from "node:net";
import { MatrixError, parseServerNameParts } from "@beckon/protocol";

export interface IdentityServerTrust {
  /** `id_server` (`host[:port]`) → base URL, e.g. `localhost:8090` → `http://127.0.0.1:8090`. */
  map: Readonly<Record<string, string>>;
  /** Refuse every `id_server` that is not in the map. */
  onlyMapped: boolean;
  /**
   * `outbound.allow_private`: the test-only switch that lets unmapped loopback/private
   * identity servers through (SyTest's mock on 127.0.0.1 over https). Off by default.
   */
  allowPrivate: boolean;
}

export interface ResolvedIdentityServer {
  /** The name as the client gave it. */
  idServer: string;
  /** Base URL without a trailing slash; paths such as `/_matrix/identity/v2/lookup` are appended. */
  baseUrl: string;
  /** True when the base URL came from the operator's map (passed as `trusted` to the outbound client). */
  mapped: boolean;
}

// Ranges that are never "public" (IANA special-purpose registries; the transitional IPv6
// ranges that CVE-2021-21392 abused included).
// Two lists: Node matches IPv4 addresses against IPv4-mapped IPv6 rules of the same list.
const NON_PUBLIC_V4 = new BlockList();
const NON_PUBLIC_V6 = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  NON_PUBLIC_V4.addSubnet(net, prefix, "ipv4");
}
for (const [net, prefix] of [
  ["::", 128],
  ["::1", 128],
  ["64:ff9b::", 96],
  ["64:ff9b:1::", 48],
  ["100::", 64],
  ["2001::", 23],
  ["2001:db8::", 32],
  ["2002::", 16],
  ["fc00::", 7],
  ["fe80::", 10],
  ["fec0::", 10],
  ["ff00::", 8],
] as const) {
  NON_PUBLIC_V6.addSubnet(net, prefix, "ipv6");
}

/** True when `ip` (a literal, IPv6 without brackets) is a public unicast address. */
export function isPublicIp(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return !NON_PUBLIC_V4.check(ip, "ipv4");
  if (family === 6) {
    // IPv4-mapped (::ffff:0:0/96) and everything outside 2000::/3 is not public.
    if (/^::ffff:/i.test(ip)) return false;
    if (!/^[23][0-9a-f]{3}:/i.test(ip)) return false;
    return !NON_PUBLIC_V6.check(ip, "ipv6");
  }
  return false;
}

function notTrusted(idServer: string, why: string): MatrixError {
  return new MatrixError("M_SERVER_NOT_TRUSTED", `Identity server ${JSON.stringify(idServer)} is not trusted: ${why}`, 400);
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/** Looks `id_server` up in the map (exact, then with the host lower-cased). */
function mapped(idServer: string, map: Readonly<Record<string, string>>): string | undefined {
  if (Object.prototype.hasOwnProperty.call(map, idServer)) return map[idServer];
  const lower = idServer.toLowerCase();
  for (const [k, val] of Object.entries(map)) if (k.toLowerCase() === lower) return val;
  return undefined;
}

/**
 * Decides where `id_server` lives, or throws 400 `M_SERVER_NOT_TRUSTED`. Pure: no DNS, no
 * connection.
 */
export function resolveIdentityServer(idServer: string, trust: IdentityServerTrust): ResolvedIdentityServer {
  const fromMap = mapped(idServer, trust.map);
  if (fromMap !== undefined) return { idServer, baseUrl: trimSlash(fromMap), mapped: true };
  if (trust.onlyMapped) throw notTrusted(idServer, "only configured identity servers are used");
  if (idServer.includes("://")) throw notTrusted(idServer, "id_server is a host name, without a scheme");
  // Synapse tolerates a `/path` suffix after host[:port].
  const slash = idServer.indexOf("/");
  const hostPort = slash < 0 ? idServer : idServer.slice(0, slash);
  const path = slash < 0 ? "" : idServer.slice(slash);
  if (path !== "" && !/^(\/[A-Za-z0-9._~%!$&'()*+,;=:@-]*)*$/.test(path)) throw notTrusted(idServer, "invalid path");
  let parts;
  try {
    parts = parseServerNameParts(hostPort);
  } catch {
    throw notTrusted(idServer, "not a valid host[:port]");
  }
  if (!trust.allowPrivate) {
    if (parts.kind === "ipv4" && !isPublicIp(parts.host)) throw notTrusted(idServer, "not a public address");
    if (parts.kind === "ipv6" && !isPublicIp(parts.host.slice(1, -1))) throw notTrusted(idServer, "not a public address");
    const h = parts.host.toLowerCase();
    if (parts.kind === "dns" && (h === "localhost" || h.endsWith(".localhost") || !h.includes("."))) {
      throw notTrusted(idServer, "not a public name");
    }
  }
  return { idServer, baseUrl: trimSlash(`https://${hostPort}${path}`), mapped: false };
}

/**
 * Whether a `key_validity_url` may be fetched, and whether it is under a mapped base URL
 * (DECISIONS.md: mapped base URLs and public https URLs only). Returns undefined when refused.
 */
export function checkValidityUrl(url: string, trust: IdentityServerTrust): { mapped: boolean } | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.username !== "" || u.password !== "") return undefined;
  for (const base of Object.values(trust.map)) {
    let b: URL;
    try {
      b = new URL(base);
    } catch {
      continue;
    }
    const basePath = b.pathname.replace(/\/+$/, "");
    if (u.origin === b.origin && (basePath === "" || u.pathname === basePath || u.pathname.startsWith(basePath + "/"))) {
      return { mapped: true };
    }
  }
  if (trust.onlyMapped) return undefined;
  if (u.protocol !== "https:") return undefined;
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  if (!trust.allowPrivate) {
    if (isIP(host) !== 0 && !isPublicIp(host)) return undefined;
    const h = host.toLowerCase();
    if (isIP(host) === 0 && (h === "localhost" || h.endsWith(".localhost") || !h.includes("."))) return undefined;
  }
  return { mapped: false };
}
