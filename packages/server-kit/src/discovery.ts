/**
 * Matrix server discovery (Server-Server API "Resolving server names"; spec-digest §5.5):
 * where do requests for a server name go. The explicit config map wins (DECISIONS.md: the
 * homeserver map of the identity server, trusted as configured); otherwise:
 *
 * 1. IP literal → that IP, the given port or 8448; `Host` = the server name.
 * 2. host name with an explicit port → that host and port.
 * 3. `GET https://<name>/.well-known/matrix/server` → `{"m.server": "<delegated>[:port]"}`, then
 *    for the delegated name: IP literal / explicit port as above, else SRV
 *    `_matrix-fed._tcp`, else (deprecated) `_matrix._tcp`, else port 8448.
 * 4. no usable .well-known → SRV `_matrix-fed._tcp.<name>`, then `_matrix._tcp.<name>`.
 * 5. → `https://<name>:8448`.
 *
 * With SRV, the connection goes to the SRV target while `Host` and the TLS certificate
 * check stay on the (delegated) server name: use {@link ServerResolver.request}, which sends
 * requests that way through the guarded outbound client. Results are cached (`.well-known`
 * by its Cache-Control, default 24 h, at most 48 h; results after a failed `.well-known` at
 * most 1 h).
 *
 * @example
 * const servers = createServerResolver({ outbound, map: config.homeservers });
 * const r = await servers.request("example.org", "/_matrix/federation/v1/3pid/onbind", { method: "POST", body });
 */
import { promises as dns } from "node:dns";
import { isJsonObject, parseServerNameParts, type ParsedServerName } from "@beckon/protocol";
import type { Logger } from "pino";
import { systemClock, type Clock } from "./clock.js";
import { OutboundError, type OutboundClient, type OutboundRequestOptions, type OutboundResponse } from "./outbound.js";

/** One SRV record. */
export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}
/** Looks up SRV records (injectable; default `dns.resolveSrv`). An empty list means none. */
export type SrvResolver = (name: string) => Promise<SrvRecord[]>;
/** Fetches a `.well-known` URL (injectable; default the outbound client, 50 KiB cap). */
export type WellKnownFetcher = (url: string) => Promise<Pick<OutboundResponse, "status" | "headers" | "text">>;

export interface ServerResolverOptions {
  outbound: OutboundClient;
  /** Server name → base URL, used as configured (trusted: may be loopback or plain http). */
  map?: Readonly<Record<string, string>>;
  /** How long discovered results are kept when `.well-known` says nothing (default 24 h). */
  cacheMs?: number;
  resolveSrv?: SrvResolver;
  fetchWellKnown?: WellKnownFetcher;
  clock?: Clock;
  logger?: Logger;
  /** Entries kept at most (default 10 000). */
  maxCacheEntries?: number;
}

/** Where to send requests for a server name. */
export interface ResolvedServer {
  serverName: string;
  /** Scheme, host and port to build request URLs from; the TLS certificate is checked against its host. */
  baseUrl: string;
  /** The `Host` header to send. */
  hostHeader: string;
  /** Set when the TCP connection goes elsewhere than `baseUrl`'s host (an SRV target). */
  connectTo?: { host: string; port: number };
  /** From the explicit map: private/loopback addresses allowed. */
  trusted: boolean;
  /** How it was found (for logs and tests). */
  via: "map" | "ip-literal" | "explicit-port" | "well-known" | "srv" | "default-port";
}

export interface ServerResolver {
  /**
   * The base URL for a server name. When discovery ends at an SRV record this is
   * `https://<target>:<port>`; prefer {@link request} (right `Host` and certificate name).
   */
  resolve(serverName: string): Promise<string>;
  /** Full discovery result. */
  resolveServer(serverName: string): Promise<ResolvedServer>;
  /** Sends `path` (with query) to the server, as discovery says. */
  request(serverName: string, path: string, options?: OutboundRequestOptions): Promise<OutboundResponse>;
  /** Forgets cached results (all, or one server name). */
  clearCache(serverName?: string): void;
}

const DAY = 86_400_000;
const HOUR = 3_600_000;
const DEFAULT_PORT = 8448;

function hostForUrl(p: ParsedServerName): string {
  return p.host; // IPv6 literals keep their brackets in ParsedServerName
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

const defaultSrv: SrvResolver = async (name) => {
  try {
    return await dns.resolveSrv(name);
  } catch {
    return []; // ENOTFOUND, ENODATA, timeouts: no usable record
  }
};

/** Lowest priority wins; within it the highest weight (deterministic). A "." target means "no service". */
function pickSrv(records: SrvRecord[]): SrvRecord | undefined {
  const usable = records.filter((r) => r.name !== "" && r.name !== "." && r.port > 0);
  usable.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
  return usable[0];
}

function maxAgeMs(cacheControl: string | undefined): number | undefined {
  if (!cacheControl) return undefined;
  if (/(^|,)\s*(no-store|no-cache)\s*(,|$)/i.test(cacheControl)) return 0;
  const m = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?/i.exec(cacheControl);
  return m ? Number(m[1]) * 1000 : undefined;
}

export function createServerResolver(options: ServerResolverOptions): ServerResolver {
  const { outbound } = options;
  const map = new Map(Object.entries(options.map ?? {}).map(([k, url]) => [k, url.replace(/\/+$/, "")]));
  const clock = options.clock ?? systemClock;
  const cacheMs = options.cacheMs ?? DAY;
  const resolveSrv = options.resolveSrv ?? defaultSrv;
  const maxEntries = options.maxCacheEntries ?? 10_000;
  const log = options.logger;
  const fetchWellKnown: WellKnownFetcher =
    options.fetchWellKnown ?? ((url) => outbound.request(url, { maxResponseBytes: 50 * 1024, timeoutMs: 10_000 }));
  const cache = new Map<string, { value: ResolvedServer; expires: number }>();
  const pending = new Map<string, Promise<ResolvedServer>>();

  /** Discovery for a name whose host part has no port and is not an IP (steps 3.3–3.5 / 4–6). */
  async function bySrvOrDefault(serverName: string, host: string, via: "well-known" | "srv" | "default-port"): Promise<ResolvedServer> {
    for (const service of ["_matrix-fed._tcp", "_matrix._tcp"]) {
      const record = pickSrv(await resolveSrv(`${service}.${host}`));
      if (record) {
        return {
          serverName,
          baseUrl: `https://${host}`,
          hostHeader: host,
          connectTo: { host: record.name.replace(/\.$/, ""), port: record.port },
          trusted: false,
          via: via === "well-known" ? "well-known" : "srv",
        };
      }
    }
    return { serverName, baseUrl: `https://${host}:${DEFAULT_PORT}`, hostHeader: host, trusted: false, via };
  }

  /** Steps 1–2 for a parsed name; undefined when .well-known/SRV are needed. */
  function direct(serverName: string, p: ParsedServerName, via?: "well-known"): ResolvedServer | undefined {
    if (p.kind !== "dns") {
      return { serverName, baseUrl: `https://${hostForUrl(p)}:${p.port ?? DEFAULT_PORT}`, hostHeader: serverNameOrHost(p), trusted: false, via: via ?? "ip-literal" };
    }
    if (p.port !== undefined) {
      return { serverName, baseUrl: `https://${p.host}:${p.port}`, hostHeader: `${p.host}:${p.port}`, trusted: false, via: via ?? "explicit-port" };
    }
    return undefined;
  }

  function serverNameOrHost(p: ParsedServerName): string {
    return p.port !== undefined ? `${p.host}:${p.port}` : p.host;
  }

  async function discover(serverName: string, p: ParsedServerName): Promise<{ value: ResolvedServer; ttl: number }> {
    const host = p.host;
    let delegated: ParsedServerName | undefined;
    let ttl = cacheMs;
    try {
      const res = await fetchWellKnown(`https://${host}/.well-known/matrix/server`);
      if (res.status === 200) {
        const body: unknown = JSON.parse(res.text);
        const target = isJsonObject(body) ? body["m.server"] : undefined;
        if (typeof target === "string") delegated = parseServerNameParts(target);
        const age = maxAgeMs(res.headers["cache-control"]);
        ttl = Math.min(age ?? cacheMs, 2 * DAY);
      }
    } catch (e) {
      log?.debug({ serverName, err: e instanceof Error ? e.message : String(e) }, ".well-known/matrix/server failed");
    }
    if (delegated) {
      const value = direct(serverName, delegated, "well-known") ?? (await bySrvOrDefault(serverName, delegated.host, "well-known"));
      return { value: { ...value, via: "well-known" }, ttl };
    }
    // No usable .well-known: spec says cache such errors for at most an hour.
    return { value: await bySrvOrDefault(serverName, host, "default-port"), ttl: Math.min(cacheMs, HOUR) };
  }

  async function resolveServer(serverName: string): Promise<ResolvedServer> {
    const mapped = map.get(serverName) ?? map.get(serverName.toLowerCase());
    if (mapped !== undefined) {
      return { serverName, baseUrl: mapped, hostHeader: new URL(mapped).host, trusted: true, via: "map" };
    }
    let p: ParsedServerName;
    try {
      p = parseServerNameParts(serverName);
    } catch (e) {
      throw new OutboundError("blocked", `invalid server name: ${e instanceof Error ? e.message : String(e)}`, `matrix://${serverName}`);
    }
    const quick = direct(serverName, p);
    if (quick) return quick;
    const key = p.host.toLowerCase();
    const hit = cache.get(key);
    if (hit && hit.expires > clock.now()) return { ...hit.value, serverName };
    let inFlight = pending.get(key);
    if (!inFlight) {
      inFlight = discover(serverName, p)
        .then(({ value, ttl }) => {
          if (ttl > 0) {
            cache.delete(key);
            if (cache.size >= maxEntries) {
              const oldest = cache.keys().next();
              if (!oldest.done) cache.delete(oldest.value);
            }
            cache.set(key, { value, expires: clock.now() + ttl });
          }
          return value;
        })
        .finally(() => pending.delete(key));
      pending.set(key, inFlight);
    }
    return { ...(await inFlight), serverName };
  }

  return {
    resolveServer,
    async resolve(serverName) {
      const r = await resolveServer(serverName);
      if (r.connectTo) {
        const h = r.connectTo.host.includes(":") ? `[${stripBrackets(r.connectTo.host)}]` : r.connectTo.host;
        return `https://${h}:${r.connectTo.port}`;
      }
      return r.baseUrl;
    },
    async request(serverName, path, opts = {}) {
      const r = await resolveServer(serverName);
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (!r.trusted && !Object.keys(headers).some((k) => k.toLowerCase() === "host")) headers.host = r.hostHeader;
      const request: OutboundRequestOptions = { ...opts, headers, trusted: r.trusted || opts.trusted === true };
      if (r.connectTo) request.connectTo = r.connectTo;
      return outbound.request(`${r.baseUrl}${path.startsWith("/") ? path : `/${path}`}`, request);
    },
    clearCache(serverName) {
      if (serverName === undefined) cache.clear();
      else {
        try {
          cache.delete(parseServerNameParts(serverName).host.toLowerCase());
        } catch {
          /* not a valid name: nothing cached */
        }
      }
    },
  };
}
