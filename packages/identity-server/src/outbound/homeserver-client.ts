/**
 * The guarded HTTP client the identity server uses to reach homeservers: explicit
 * `homeservers` map first (trusted as configured), else Matrix server discovery
 * (https://spec.matrix.org/v1.18/server-server-api/#resolving-server-names: IP literal or
 * explicit port, `.well-known/matrix/server`, SRV `_matrix-fed._tcp` then `_matrix._tcp`,
 * port 8448). Every connection goes to an address checked against the blocklist (unless
 * `allowPrivate`), pinned through the socket's `lookup`; responses are size- and time-capped;
 * redirects are not followed. `insecureSkipTlsVerify` is a test-only switch.
 */
import * as http from "node:http";
import * as https from "node:https";
import { promises as dns } from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import { parseServerNameParts } from "@beckon/protocol";
import type { Logger } from "pino";
import { HomeserverUnreachable, type HomeserverClient, type HomeserverResponse } from "../domain/homeserver-client.js";
import { isBlockedAddress } from "./guard.js";

export interface HomeserverClientOptions {
  /** server name → base URL (trusted: private addresses allowed). */
  map?: Readonly<Record<string, string>>;
  allowPrivate?: boolean;
  insecureSkipTlsVerify?: boolean;
  timeoutMs?: number;
  maxResponseBytes?: number;
  logger?: Logger;
  /** Discovery results are cached this long (default 1 h). */
  discoveryCacheMs?: number;
}

interface Target {
  url: URL;
  /** The Host header (the server name, or the delegated name). */
  host: string;
  /** TLS SNI / certificate name. */
  tlsName: string;
  trusted: boolean;
}

export function createHomeserverClient(options: HomeserverClientOptions = {}): HomeserverClient {
  const map = new Map(Object.entries(options.map ?? {}).map(([k, v]) => [k.toLowerCase(), v.replace(/\/+$/, "")]));
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxBytes = options.maxResponseBytes ?? 1024 * 1024;
  const cache = new Map<string, { base: string; host: string; tlsName: string; until: number }>();
  const cacheMs = options.discoveryCacheMs ?? 3_600_000;

  async function checkedLookup(hostname: string, trusted: boolean): Promise<{ address: string; family: number }> {
    const literal = hostname.replace(/^\[|\]$/g, "");
    let addrs: { address: string; family: number }[];
    if (isIP(literal)) addrs = [{ address: literal, family: isIP(literal) }];
    else {
      try {
        addrs = await dns.lookup(literal, { all: true });
      } catch (e) {
        throw new HomeserverUnreachable(`DNS lookup of ${literal} failed: ${(e as NodeJS.ErrnoException).code ?? "error"}`, "network");
      }
    }
    const allowed = trusted || options.allowPrivate ? addrs : addrs.filter((a) => !isBlockedAddress(a.address));
    const first = allowed[0];
    if (!first) throw new HomeserverUnreachable(`${literal} resolves only to blocked addresses`, "blocked");
    return first;
  }

  function rawRequest(
    target: Target,
    method: string,
    body: string | undefined,
    timeout: number,
  ): Promise<HomeserverResponse> {
    return checkedLookup(target.url.hostname, target.trusted).then(
      (addr) =>
        new Promise<HomeserverResponse>((resolve, reject) => {
          const lookup: LookupFunction = (_h, opts, cb) => {
            if ((opts as { all?: boolean }).all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [addr]);
            else cb(null, addr.address, addr.family);
          };
          const isHttps = target.url.protocol === "https:";
          const headers: Record<string, string> = { host: target.host, accept: "application/json", "user-agent": "Beckon-IS" };
          if (body !== undefined) {
            headers["content-type"] = "application/json";
            headers["content-length"] = String(Buffer.byteLength(body));
          }
          const reqOpts: https.RequestOptions = {
            method,
            hostname: target.url.hostname.replace(/^\[|\]$/g, ""),
            port: target.url.port || (isHttps ? 443 : 80),
            path: target.url.pathname + target.url.search,
            headers,
            lookup,
            agent: false,
          };
          if (isHttps) {
            reqOpts.servername = target.tlsName;
            reqOpts.rejectUnauthorized = !options.insecureSkipTlsVerify;
          }
          const req = (isHttps ? https : http).request(reqOpts, (res) => {
            const chunks: Buffer[] = [];
            let size = 0;
            res.on("data", (c: Buffer) => {
              size += c.length;
              if (size > maxBytes) {
                req.destroy(new HomeserverUnreachable("response too large", "too_large"));
                return;
              }
              chunks.push(c);
            });
            res.on("end", () => {
              const text = Buffer.concat(chunks).toString("utf8");
              resolve({
                status: res.statusCode ?? 0,
                text,
                json() {
                  try {
                    return JSON.parse(text) as unknown;
                  } catch {
                    return undefined;
                  }
                },
              });
            });
            res.on("error", (e) => reject(e));
          });
          req.setTimeout(timeout, () => req.destroy(new HomeserverUnreachable(`timed out after ${timeout} ms`, "timeout")));
          req.on("error", (e) => {
            if (e instanceof HomeserverUnreachable) reject(e);
            else {
              const code = (e as NodeJS.ErrnoException).code ?? "";
              reject(new HomeserverUnreachable(`${e.message}`, /CERT|TLS|SSL/i.test(code) ? "tls" : "network"));
            }
          });
          if (body !== undefined) req.write(body);
          req.end();
        }),
    );
  }

  async function wellKnown(host: string): Promise<string | undefined> {
    try {
      const res = await rawRequest(
        { url: new URL(`https://${host}/.well-known/matrix/server`), host, tlsName: host, trusted: false },
        "GET",
        undefined,
        Math.min(timeoutMs, 5_000),
      );
      if (res.status !== 200) return undefined;
      const j = res.json();
      const m = typeof j === "object" && j !== null ? (j as Record<string, unknown>)["m.server"] : undefined;
      return typeof m === "string" && m.length > 0 && m.length < 256 ? m : undefined;
    } catch {
      return undefined;
    }
  }

  async function srv(host: string): Promise<{ name: string; port: number } | undefined> {
    for (const prefix of ["_matrix-fed._tcp.", "_matrix._tcp."]) {
      try {
        const recs = await dns.resolveSrv(prefix + host);
        recs.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
        const r = recs[0];
        if (r) return { name: r.name, port: r.port };
      } catch {
        /* none */
      }
    }
    return undefined;
  }

  async function resolve(serverName: string): Promise<Target> {
    const key = serverName.toLowerCase();
    const mapped = map.get(key);
    if (mapped) {
      const url = new URL(mapped);
      return { url, host: url.host, tlsName: url.hostname, trusted: true };
    }
    const hit = cache.get(key);
    if (hit && hit.until > Date.now()) return { url: new URL(hit.base), host: hit.host, tlsName: hit.tlsName, trusted: false };
    let parts;
    try {
      parts = parseServerNameParts(serverName);
    } catch {
      throw new HomeserverUnreachable(`invalid server name ${serverName}`, "invalid");
    }
    const hostPart = parts.host;
    let base: string;
    let host = serverName;
    let tlsName = hostPart.replace(/^\[|\]$/g, "");
    if (isIP(hostPart.replace(/^\[|\]$/g, "")) || parts.port !== undefined) {
      base = `https://${hostPart}:${parts.port ?? 8448}`;
    } else {
      const delegated = await wellKnown(hostPart);
      if (delegated) {
        let d;
        try {
          d = parseServerNameParts(delegated);
        } catch {
          d = undefined;
        }
        if (d) {
          host = delegated;
          tlsName = d.host.replace(/^\[|\]$/g, "");
          if (isIP(tlsName) || d.port !== undefined) base = `https://${d.host}:${d.port ?? 8448}`;
          else {
            const s = await srv(d.host);
            base = s ? `https://${s.name}:${s.port}` : `https://${d.host}:8448`;
          }
        } else base = `https://${hostPart}:8448`;
      } else {
        const s = await srv(hostPart);
        base = s ? `https://${s.name}:${s.port}` : `https://${hostPart}:8448`;
      }
    }
    cache.set(key, { base, host, tlsName, until: Date.now() + cacheMs });
    if (cache.size > 10_000) cache.clear();
    return { url: new URL(base), host, tlsName, trusted: false };
  }

  return {
    async request(serverName, path, init = {}) {
      const t = await resolve(serverName);
      const url = new URL(path, t.url);
      const body = init.body === undefined ? undefined : JSON.stringify(init.body);
      return rawRequest({ ...t, url }, init.method ?? "GET", body, init.timeoutMs ?? timeoutMs);
    },
  };
}
