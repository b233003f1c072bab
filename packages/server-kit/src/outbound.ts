/**
 * The one guarded outbound HTTP client both servers use for requests to peers (identity
 * server → homeserver onbind and userinfo, homeserver → identity server, key validity
 * checks). protocol-notes §9.7: CVE-2021-21392 (IPv6 transitional ranges), CVE-2021-29431
 * (SSRF through an attacker-chosen server name).
 *
 * - Resolves host names itself (a custom `lookup`), checks every address against
 *   {@link isBlockedAddress}, and connects to a checked address: no second resolution, so no
 *   DNS rebinding between check and connect. IP-literal URLs are checked directly.
 * - Private, loopback, link-local… addresses are refused unless the client has
 *   `allowPrivate` or the request is `trusted` (a base URL from an explicit config map;
 *   DECISIONS.md "trust rules"). Trust covers the original origin only, not redirects elsewhere.
 * - Redirects are followed by hand, at most 3, each one checked again; https → http is refused.
 * - A connect timeout, a total timeout, and a response size cap (the transfer is aborted as
 *   soon as it is exceeded).
 * - TLS is verified unless `insecureSkipTlsVerify` (tests only; logged loudly).
 *
 * @example
 * const outbound = createOutboundClient({ logger });
 * const r = await outbound.request("https://matrix.example.org/_matrix/key/v2/server");
 * if (r.status === 200) keys = r.json();
 */
import * as http from "node:http";
import * as https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { checkServerIdentity, rootCertificates } from "node:tls";
import { promises as dns } from "node:dns";
import { parseJson } from "@beckon/protocol";
import type { Logger } from "pino";
import { redactUrl } from "./logger.js";
import { blockedReason } from "./ip-blocklist.js";

export { isBlockedAddress, blockedReason, parseIpAddress } from "./ip-blocklist.js";

export type OutboundErrorKind = "blocked" | "timeout" | "network" | "too_large" | "tls";

/** An outbound request failed before a complete response arrived. Messages never carry secrets. */
export class OutboundError extends Error {
  override name = "OutboundError";
  readonly kind: OutboundErrorKind;
  /** The request URL, with secret query parameters redacted. */
  readonly url: string;
  constructor(kind: OutboundErrorKind, message: string, url: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.url = redactUrl(url);
  }
}

export function isOutboundError(e: unknown): e is OutboundError {
  return e instanceof OutboundError;
}

/** One resolved address. */
export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}
/** Resolves a host name to its addresses (injectable; default `dns.lookup` with `all`). */
export type HostResolver = (hostname: string) => Promise<ResolvedAddress[]>;

export interface OutboundClientOptions {
  /** Allow private/loopback/link-local addresses for every request (development only). */
  allowPrivate?: boolean;
  /** Do not verify TLS certificates. Tests only; a loud warning is logged. */
  insecureSkipTlsVerify?: boolean;
  /** Total time for a request, redirects included (default 10 000 ms). */
  timeoutMs?: number;
  /** Time to resolve and connect, TLS handshake included (default min(5000, timeoutMs)). */
  connectTimeoutMs?: number;
  /** Response body cap in bytes (default 1 MiB). */
  maxResponseBytes?: number;
  /** Redirects followed at most (default 3). */
  maxRedirects?: number;
  logger?: Logger;
  /**
   * Extra trusted CA certificates (PEM), added to Node's bundled roots: a private PKI, or a
   * test's own CA. Certificates are still fully verified.
   */
  ca?: string | string[];
  /** DNS, injectable for tests. */
  resolve?: HostResolver;
  /** `User-Agent` sent when the caller sets none. */
  userAgent?: string;
}

export interface OutboundRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * The URL comes from an explicit config map (`identity_servers.map`, `homeservers`): its
   * origin may be private or loopback. Redirects to other origins are checked as usual.
   */
  trusted?: boolean;
  maxResponseBytes?: number;
  /** Follow redirects (default true); false returns the 3xx response itself. */
  followRedirects?: boolean;
  /**
   * Connect to this host and port instead of the URL's, keeping the URL's host for the
   * `Host` header and the TLS certificate check (Matrix server discovery via SRV). The
   * connection target is checked like any other address.
   */
  connectTo?: { host: string; port: number };
}

export interface OutboundResponse {
  status: number;
  /** Lower-case header names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  text: string;
  /** The final URL after redirects (may carry secrets: log it through `redactUrl`). */
  url: string;
  /** Parses `text` as JSON (strict: duplicate keys refused); throws on invalid JSON. */
  json(): unknown;
}

export interface OutboundClient {
  request(url: string, options?: OutboundRequestOptions): Promise<OutboundResponse>;
  /** Whether this client lets every request reach private addresses (`outbound.allow_private`). */
  readonly allowPrivate: boolean;
  /** Closes idle keep-alive connections. */
  close(): void;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const TLS_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

function isTlsError(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== "string") return false;
  return TLS_CODES.has(code) || code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") || code.startsWith("CERT_");
}

const defaultResolve: HostResolver = async (hostname) => {
  const all = await dns.lookup(hostname, { all: true, verbatim: true });
  return all.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

export function createOutboundClient(options: OutboundClientOptions = {}): OutboundClient {
  const allowPrivate = options.allowPrivate ?? false;
  const insecure = options.insecureSkipTlsVerify ?? false;
  const defaultTimeout = options.timeoutMs ?? 10_000;
  const maxBytesDefault = options.maxResponseBytes ?? 1024 * 1024;
  const maxRedirects = options.maxRedirects ?? 3;
  const resolveHost = options.resolve ?? defaultResolve;
  const log = options.logger;
  const userAgent = options.userAgent ?? "Beckon";

  if (insecure) {
    const msg =
      "outbound.insecure_skip_tls_verify is ON: TLS certificates of peers are NOT verified. " +
      "This is for tests only; never run a real deployment like this.";
    if (log) log.warn(msg);
    else process.emitWarning(msg, { code: "BECKON_INSECURE_TLS" });
  }

  // Separate pools for guarded and trusted requests, so that a connection opened under
  // trust is never reused for a guarded request to the same host name.
  const agentOptions = { keepAlive: true, maxSockets: 64, timeout: 60_000 };
  const ca = options.ca === undefined ? undefined : [...rootCertificates, ...(Array.isArray(options.ca) ? options.ca : [options.ca])];
  const tlsOptions: https.AgentOptions = { ...agentOptions, rejectUnauthorized: !insecure, ...(ca ? { ca } : {}) };
  const agents = {
    guarded: { http: new http.Agent(agentOptions), https: new https.Agent(tlsOptions) },
    trusted: { http: new http.Agent(agentOptions), https: new https.Agent(tlsOptions) },
  };

  /** A `lookup` for net.connect that only ever yields checked addresses. */
  function guardedLookup(mayBePrivate: boolean, url: string): LookupFunction {
    return (hostname, opts, callback) => {
      const family = typeof opts === "object" && opts !== null ? (opts as { family?: unknown }).family : undefined;
      const all = typeof opts === "object" && opts !== null && (opts as { all?: unknown }).all === true;
      resolveHost(hostname).then(
        (found) => {
          let addresses = found.filter((a) => family === undefined || family === 0 || a.family === family);
          if (!mayBePrivate) {
            const refused = addresses.filter((a) => blockedReason(a.address) !== undefined);
            addresses = addresses.filter((a) => blockedReason(a.address) === undefined);
            if (addresses.length === 0) {
              const why = refused[0] ? blockedReason(refused[0].address) : "no address";
              callback(new OutboundError("blocked", `${hostname} resolves only to refused addresses (${why})`, url), "", 4);
              return;
            }
          }
          const first = addresses[0];
          if (!first) {
            callback(Object.assign(new Error(`no address for ${hostname}`), { code: "ENOTFOUND" }), "", 4);
            return;
          }
          if (all) (callback as unknown as (e: null, a: ResolvedAddress[]) => void)(null, addresses);
          else callback(null, first.address, first.family);
        },
        (e: unknown) => callback(e as NodeJS.ErrnoException, "", 4),
      );
    };
  }

  interface Hop {
    url: URL;
    method: string;
    headers: Record<string, string>;
    body: string | undefined;
    mayBePrivate: boolean;
    maxBytes: number;
    connectTo: { host: string; port: number } | undefined;
  }

  function once(hop: Hop, abort: AbortSignal, connectTimeoutMs: number): Promise<Omit<OutboundResponse, "json" | "url">> {
    const urlText = hop.url.toString();
    return new Promise((resolve, reject) => {
      const isHttps = hop.url.protocol === "https:";
      const targetHost = stripBrackets(hop.connectTo?.host ?? hop.url.hostname);
      const targetPort = hop.connectTo?.port ?? (hop.url.port ? Number(hop.url.port) : isHttps ? 443 : 80);
      if (isIP(targetHost) !== 0 && !hop.mayBePrivate) {
        const why = blockedReason(targetHost);
        if (why !== undefined) {
          reject(new OutboundError("blocked", `refusing to connect to ${targetHost} (${why})`, urlText));
          return;
        }
      }
      let settled = false;
      const timers: { connect?: NodeJS.Timeout } = {};
      const finish = (err: OutboundError | undefined, value?: Omit<OutboundResponse, "json" | "url">) => {
        if (settled) return;
        settled = true;
        clearTimeout(timers.connect);
        abort.removeEventListener("abort", onAbort);
        if (err) {
          req.destroy();
          reject(err);
        } else if (value) resolve(value);
      };
      const fail = (e: unknown) => {
        if (e instanceof OutboundError) return finish(e);
        if (isTlsError(e)) return finish(new OutboundError("tls", `TLS failure: ${(e as Error).message}`, urlText, { cause: e }));
        const code = (e as { code?: unknown }).code;
        finish(new OutboundError("network", `request failed: ${typeof code === "string" ? code : (e as Error).message}`, urlText, { cause: e }));
      };
      const onAbort = () => {
        const reason: unknown = abort.reason;
        fail(reason instanceof OutboundError ? reason : new OutboundError("network", "request aborted", urlText, { cause: reason }));
      };

      const pool = hop.mayBePrivate ? agents.trusted : agents.guarded;
      const headers: Record<string, string> = { "user-agent": userAgent, ...hop.headers };
      if (hop.connectTo) headers.host ??= hop.url.host;
      if (hop.body !== undefined) headers["content-length"] = String(Buffer.byteLength(hop.body));
      const requestOptions: https.RequestOptions = {
        host: targetHost,
        port: targetPort,
        path: `${hop.url.pathname}${hop.url.search}`,
        method: hop.method,
        headers,
        agent: isHttps ? pool.https : pool.http,
        lookup: guardedLookup(hop.mayBePrivate, urlText),
      };
      if (isHttps) {
        requestOptions.rejectUnauthorized = !insecure;
        if (ca) requestOptions.ca = ca;
        const name = stripBrackets(hop.url.hostname);
        // SNI takes host names only; the certificate is checked against the URL's host.
        if (isIP(name) === 0) requestOptions.servername = name;
        requestOptions.checkServerIdentity = (_host, cert) => (insecure ? undefined : checkServerIdentity(name, cert));
      }
      const req = (isHttps ? https : http).request(requestOptions);
      timers.connect = setTimeout(() => fail(new OutboundError("timeout", `no connection within ${connectTimeoutMs} ms`, urlText)), connectTimeoutMs);
      timers.connect.unref();
      req.on("socket", (socket) => {
        if (!socket.connecting) clearTimeout(timers.connect);
        else socket.once(isHttps ? "secureConnect" : "connect", () => clearTimeout(timers.connect));
      });
      req.on("error", fail);
      req.on("response", (res) => {
        const declared = Number(res.headers["content-length"]);
        if (Number.isFinite(declared) && declared > hop.maxBytes) {
          fail(new OutboundError("too_large", `response of ${declared} bytes exceeds the ${hop.maxBytes}-byte limit`, urlText));
          res.destroy();
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > hop.maxBytes) {
            fail(new OutboundError("too_large", `response exceeds the ${hop.maxBytes}-byte limit`, urlText));
            res.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on("error", fail);
        res.on("aborted", () => fail(new OutboundError("network", "response aborted", urlText)));
        res.on("end", () => {
          const out: Record<string, string> = {};
          for (const [k, val] of Object.entries(res.headers)) {
            if (val !== undefined) out[k] = Array.isArray(val) ? val.join(", ") : val;
          }
          finish(undefined, { status: res.statusCode ?? 0, headers: out, text: Buffer.concat(chunks).toString("utf8") });
        });
      });
      if (abort.aborted) {
        onAbort();
        return;
      }
      abort.addEventListener("abort", onAbort, { once: true });
      req.end(hop.body);
    });
  }

  return {
    allowPrivate,
    close() {
      for (const pool of Object.values(agents)) {
        pool.http.destroy();
        pool.https.destroy();
      }
    },
    async request(url, opts = {}) {
      let current: URL;
      try {
        current = new URL(url);
      } catch {
        throw new OutboundError("blocked", "not an absolute URL", url);
      }
      const original = current;
      const timeoutMs = opts.timeoutMs ?? defaultTimeout;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(new OutboundError("timeout", `no complete response within ${timeoutMs} ms`, url)), timeoutMs);
      timer.unref();
      const forward = () => controller.abort(opts.signal?.reason);
      if (opts.signal?.aborted) forward();
      opts.signal?.addEventListener("abort", forward, { once: true });
      const started = performance.now();
      try {
        let method = (opts.method ?? "GET").toUpperCase();
        let body = opts.body;
        let headers = { ...lowerCaseKeys(opts.headers ?? {}) };
        for (let redirects = 0; ; redirects++) {
          if (current.protocol !== "http:" && current.protocol !== "https:") {
            throw new OutboundError("blocked", `unsupported URL scheme ${current.protocol}`, current.toString());
          }
          const sameOrigin = current.origin === original.origin;
          const hop: Hop = {
            url: current,
            method,
            headers,
            body,
            mayBePrivate: allowPrivate || (opts.trusted === true && sameOrigin),
            maxBytes: opts.maxResponseBytes ?? maxBytesDefault,
            connectTo: sameOrigin ? opts.connectTo : undefined,
          };
          const res = await once(hop, controller.signal, Math.min(options.connectTimeoutMs ?? 5000, timeoutMs));
          const location = res.headers.location;
          if (opts.followRedirects === false || !REDIRECTS.has(res.status) || location === undefined) {
            if (log?.isLevelEnabled("debug")) log.debug({ url: redactUrl(current.toString()), status: res.status, ms: Math.round(performance.now() - started) }, "outbound request");
            const finalUrl = current.toString();
            return { ...res, url: finalUrl, json: () => parseJson(res.text, { allowFloats: true }) };
          }
          if (redirects >= maxRedirects) throw new OutboundError("network", `more than ${maxRedirects} redirects`, url);
          let next: URL;
          try {
            next = new URL(location, current);
          } catch {
            throw new OutboundError("network", "invalid redirect location", current.toString());
          }
          if (current.protocol === "https:" && next.protocol === "http:") {
            throw new OutboundError("blocked", "refusing a redirect from https to http", current.toString());
          }
          if (next.origin !== current.origin) {
            // Credentials are for the origin they were meant for.
            delete headers.authorization;
            delete headers.cookie;
          }
          if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === "POST")) {
            method = "GET";
            body = undefined;
            headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k !== "content-type"));
          }
          current = next;
        }
      } catch (e) {
        if (e instanceof OutboundError) {
          if (log?.isLevelEnabled("debug")) log.debug({ url: redactUrl(current.toString()), kind: e.kind, err: e.message }, "outbound request failed");
        }
        throw e;
      } finally {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", forward);
      }
    },
  };
}

/**
 * True when `url` lies under one of the explicitly configured base URLs (same scheme, host
 * and port, and path below the base path): such a URL is used as configured, i.e. requested
 * with `trusted: true` (DECISIONS.md: `key_validity_url` fetches to the mapped base URLs).
 */
export function isAllowedByMap(url: string, baseUrls: Iterable<string> | Readonly<Record<string, string>>): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  const list = Symbol.iterator in Object(baseUrls) ? [...(baseUrls as Iterable<string>)] : Object.values(baseUrls as Record<string, string>);
  return list.some((base) => {
    let b: URL;
    try {
      b = new URL(base);
    } catch {
      return false;
    }
    if (b.origin !== u.origin || b.username !== "" || u.username !== "") return false;
    const prefix = b.pathname.replace(/\/+$/, "");
    return u.pathname === prefix || u.pathname.startsWith(`${prefix}/`);
  });
}

/**
 * Resolves `host` (a name or an IP literal) and says whether every address is public —
 * the check DECISIONS.md asks for before talking to an unmapped identity server. Makes no
 * connection. `resolve` defaults to the system resolver.
 */
export async function checkPublicHost(
  host: string,
  resolve: HostResolver = defaultResolve,
): Promise<{ ok: true; addresses: string[] } | { ok: false; reason: string }> {
  const h = stripBrackets(host);
  let addresses: string[];
  if (isIP(h) !== 0) addresses = [h];
  else {
    try {
      addresses = (await resolve(h)).map((a) => a.address);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      return { ok: false, reason: `cannot resolve ${h}: ${typeof code === "string" ? code : "error"}` };
    }
  }
  if (addresses.length === 0) return { ok: false, reason: `no address for ${h}` };
  for (const a of addresses) {
    const why = blockedReason(a);
    if (why !== undefined) return { ok: false, reason: `${h} resolves to a refused address (${why})` };
  }
  return { ok: true, addresses };
}

function lowerCaseKeys(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, val]) => [k.toLowerCase(), val]));
}

