/**
 * Sends generated {@link FuzzCase}s through `app.inject()` and checks the invariants of
 * issue 7 on every answer:
 * - no 500 (a 5xx other than 502/504, which are right when a peer is really unreachable);
 * - every error is JSON `{errcode, error}` with a spec errcode, leaking no internals — except the
 *   documented non-errors (the UIA 401 `{flows, session}`, the HTML `submitToken` page);
 * - a success of a JSON endpoint is JSON (and matches the descriptor's response validator);
 * - the app stays up: a known-good request right after still succeeds.
 */
import fc from "fast-check";
import type { FastifyInstance, InjectOptions } from "fastify";
import { isSpecErrcode, type EndpointDescriptor } from "@beckon/protocol";
import { caseArb, unknownRouteArb, type AuthChoice, type Example, type FuzzCase } from "./gen.js";

/** Credentials and values a target resolves at send time. */
export interface FuzzTarget {
  name: string;
  app: FastifyInstance;
  endpoints: EndpointDescriptor[];
  examples: Record<string, Example>;
  /** Fallback values for `{param}`s an example does not give. */
  paramPool: Record<string, string>;
  /** The token a case with `auth: valid` uses for this endpoint (may rotate: see `afterCase`). */
  tokenFor(d: EndpointDescriptor | undefined): string;
  /** Prefixes for requests to undeclared paths. */
  unknownPrefixes: string[];
  /** The known-good request: throws (with a reason) when it does not succeed. */
  knownGood(caseIndex: number): Promise<void>;
  /** Called after each case (e.g. to replace a token the case legitimately logged out). */
  afterCase?(c: FuzzCase): Promise<void>;
  /**
   * Whether a 502/504 answer to this case is right, i.e. the peer it needed is really unreachable
   * (DECISIONS.md). Default: always (counted only).
   */
  peerErrorIsRight?(c: FuzzCase, body: string): boolean;
  /** Rewrites a case before sending (e.g. bounding long-poll timeouts). */
  adjust?(c: FuzzCase): FuzzCase;
}

export interface Sent {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
}

/** Violations matching a documented defect are counted, not failed (see `KNOWN_DEFECTS`). */
export interface KnownDefect {
  id: string;
  matches(c: FuzzCase, violation: string): boolean;
}

export interface FuzzStats {
  cases: number;
  byTarget: Map<string, number>;
  /** Cases per target answered 2xx (a target never succeeding means its example is wrong). */
  okByTarget: Map<string, number>;
  byStatus: Map<number, number>;
  knownDefectHits: Map<string, number>;
  peerErrors: number;
  /** A few 502/504 requests, to judge whether the peer really was unreachable. */
  peerErrorSamples: string[];
  ms: number;
}

const INTERNALS = /\bat [\w.<>]+ \(|node_modules|\.js:\d+|SQLITE_|sqlite3?\b|kysely|better-sqlite|TypeError|ReferenceError|Cannot read prop|undefined is not|ECONNREFUSED/i;

function authHeaderValue(a: AuthChoice, token: string): string | undefined {
  switch (a.kind) {
    case "valid":
      return `Bearer ${token}`;
    case "valid-mangled":
      return `Bearer ${a.how === "suffix" ? token + "x" : a.how === "case" ? token.toUpperCase() : a.how === "truncate" ? token.slice(0, -1) : `${token} ${token}`}`;
    case "header":
      return a.value;
    default:
      return undefined;
  }
}

function deepBody(depth: number, open: string): string {
  const close = open === "[" ? "]" : "}";
  return open.repeat(depth) + "1" + close.repeat(depth);
}

/** The inject options of a case (credentials resolved). */
export function toInject(c: FuzzCase, token: string): InjectOptions {
  const headers: Record<string, string> = { ...c.extraHeaders };
  const auth = authHeaderValue(c.auth, token);
  if (auth !== undefined) headers.authorization = auth;
  if (c.contentType !== null) headers["content-type"] = c.contentType;
  let query = c.query;
  const addQ = (k: string, val: string) => {
    query = query ? `${query}&${k}=${val}` : `${k}=${val}`;
  };
  if (c.auth.kind === "query") addQ("access_token", c.auth.value);
  if (c.auth.kind === "valid-in-query") addQ("access_token", encodeURIComponent(token));
  let payload: string | Buffer | undefined;
  switch (c.body.kind) {
    case "json":
      payload = JSON.stringify(c.body.value) ?? "null";
      break;
    case "text":
      payload = c.body.text;
      break;
    case "bytes":
      payload = Buffer.from(c.body.hex, "hex");
      break;
    case "oversized":
      payload = Buffer.concat([Buffer.from('{"a":"'), Buffer.alloc(c.body.bytes, 0x61), Buffer.from('"}')]);
      break;
    case "deep":
      payload = deepBody(c.body.depth, c.body.open);
      break;
    case "none":
      break;
  }
  const opts: InjectOptions = { method: c.method as NonNullable<InjectOptions["method"]>, url: query ? `${c.path}?${query}` : c.path, headers };
  if (payload !== undefined) opts.payload = payload;
  return opts;
}

/** A short, readable description of a case (for reports and `RELIABILITY.md`). */
export function describeCase(c: FuzzCase): string {
  const body =
    c.body.kind === "json"
      ? truncate(JSON.stringify(c.body.value) ?? "undefined", 300)
      : c.body.kind === "text"
        ? `text ${truncate(JSON.stringify(c.body.text), 300)}`
        : c.body.kind === "bytes"
          ? `bytes 0x${truncate(c.body.hex, 300)}`
          : c.body.kind === "oversized"
            ? `${c.body.bytes} bytes`
            : c.body.kind === "deep"
              ? `${c.body.open} nested ${c.body.depth} deep`
              : "no body";
  const auth = c.auth.kind === "header" || c.auth.kind === "query" ? `${c.auth.kind}:${truncate(JSON.stringify(c.auth.value), 60)}` : c.auth.kind;
  return `${c.method} ${truncate(c.path, 200)}${c.query ? "?" + truncate(c.query, 200) : ""} [${c.target}; auth ${auth}; content-type ${c.contentType ?? "none"}${Object.keys(c.extraHeaders).length ? "; " + JSON.stringify(c.extraHeaders) : ""}] body: ${body}`;
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…(${s.length})` : s;
}

function header(res: Sent, name: string): string {
  const h = res.headers[name];
  return Array.isArray(h) ? h.join(",") : h === undefined ? "" : String(h);
}

/** The invariants; returns the violations (empty when the answer is fine). */
export function checkResponse(d: EndpointDescriptor | undefined, c: FuzzCase, res: Sent): string[] {
  const out: string[] = [];
  const { status } = res;
  if (status >= 500 && status !== 502 && status !== 504) out.push(`status ${status}`);
  if (c.method === "HEAD" || (c.method === "OPTIONS" && status === 204)) return out;
  const ctype = header(res, "content-type");
  const isHtmlEndpoint = d?.responseKind === "html" && c.method === d.method;
  if (status >= 300 && status < 400) {
    if (!isHtmlEndpoint) out.push(`unexpected redirect ${status}`);
    return out;
  }
  if (status < 300) {
    if (isHtmlEndpoint) return out;
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.body);
    } catch {
      out.push(`success ${status} is not JSON: ${truncate(res.body, 120)}`);
      return out;
    }
    if (d?.response && c.method === d.method) {
      try {
        d.response(parsed, "response");
      } catch (e) {
        out.push(`success ${status} does not match the response validator: ${(e as Error).message}`);
      }
    }
    return out;
  }
  // An error.
  if (isHtmlEndpoint && /text\/html/.test(ctype)) return out; // the submitToken failure page
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    out.push(`error ${status} is not JSON (${ctype}): ${truncate(res.body, 120)}`);
    return out;
  }
  if (!/application\/json/.test(ctype)) out.push(`error ${status} has content-type ${ctype}`);
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    out.push(`error ${status} body is not an object`);
    return out;
  }
  const b = body as Record<string, unknown>;
  // User-interactive auth: a 401 {flows, session} is a challenge, not an error (DECISIONS.md).
  if (status === 401 && Array.isArray(b.flows)) return out;
  if (typeof b.errcode !== "string") out.push(`error ${status} without errcode: ${truncate(res.body, 160)}`);
  else if (!isSpecErrcode(b.errcode)) out.push(`error ${status} with non-spec errcode ${b.errcode}`);
  if (typeof b.error !== "string") out.push(`error ${status} without error message: ${truncate(res.body, 160)}`);
  else if (INTERNALS.test(b.error)) out.push(`error ${status} leaks internals: ${truncate(b.error, 160)}`);
  if (status === 429 && typeof b.retry_after_ms !== "number") out.push("429 without retry_after_ms");
  return out;
}

/** Sends a case; a hang (> `timeoutMs`) is a violation too. */
export async function send(app: FastifyInstance, opts: InjectOptions, timeoutMs = 15_000): Promise<Sent> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const res = await Promise.race([
      app.inject(opts),
      new Promise<never>((_r, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { status: res.statusCode, headers: res.headers, body: res.body };
  } finally {
    clearTimeout(timer);
  }
}

/** The arbitrary of a whole run: every endpoint (uniformly), plus undeclared paths. */
export function targetArb(t: FuzzTarget): fc.Arbitrary<FuzzCase> {
  const perEndpoint = t.endpoints.map((d) => caseArb(d, t.examples[d.id] ?? {}, t.paramPool));
  return fc.oneof({ weight: t.endpoints.length * 10, arbitrary: fc.oneof(...perEndpoint) }, { weight: Math.max(1, Math.round(t.endpoints.length / 2)), arbitrary: unknownRouteArb(t.unknownPrefixes) });
}

/** True when `url`, once resolved like a URL (dot segments removed), still has the shape of `template`. */
export function reachesTemplate(url: string, template: string): boolean {
  let path: string;
  try {
    path = new URL(url, "http://localhost").pathname;
  } catch {
    return false;
  }
  const re = new RegExp(`^${template.split(/\{[A-Za-z0-9_]+\}/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*")}/?$`);
  return re.test(path);
}

export class InvariantViolation extends Error {}

/**
 * Runs `numRuns` cases against one target. Fails (with fast-check's shrunk, minimal request)
 * on the first violation that matches no known defect.
 */
export async function runFuzz(t: FuzzTarget, opts: { numRuns: number; seed?: number | undefined; knownDefects?: KnownDefect[] }): Promise<FuzzStats> {
  const byId = new Map(t.endpoints.map((d) => [d.id, d]));
  const stats: FuzzStats = { cases: 0, byTarget: new Map(), okByTarget: new Map(), byStatus: new Map(), knownDefectHits: new Map(), peerErrors: 0, peerErrorSamples: [], ms: 0 };
  const started = performance.now();
  let index = 0;
  const property = fc.asyncProperty(targetArb(t), async (raw) => {
    const c = t.adjust ? t.adjust(raw) : raw;
    const d = byId.get(c.target);
    index++;
    const request = toInject(c, t.tokenFor(d));
    const res = await send(t.app, request);
    stats.cases++;
    stats.byTarget.set(c.target, (stats.byTarget.get(c.target) ?? 0) + 1);
    stats.byStatus.set(res.status, (stats.byStatus.get(res.status) ?? 0) + 1);
    if (res.status < 300) stats.okByTarget.set(c.target, (stats.okByTarget.get(c.target) ?? 0) + 1);
    if (res.status === 502 || res.status === 504) {
      stats.peerErrors++;
      if (stats.peerErrorSamples.length < 3) stats.peerErrorSamples.push(`${describeCase(c)} → ${res.status} ${truncate(res.body, 200)}`);
    }
    // `..` segments are resolved before routing: judge such a request as one to whatever path it became.
    const violations = checkResponse(d && reachesTemplate(String(request.url), c.template) ? d : undefined, c, res);
    if ((res.status === 502 || res.status === 504) && t.peerErrorIsRight && !t.peerErrorIsRight(c, res.body)) {
      violations.push(`status ${res.status} although the peer is up`);
    }
    await t.afterCase?.(c);
    try {
      await t.knownGood(index);
    } catch (e) {
      violations.push(`known-good request failed after this case: ${(e as Error).message}`);
    }
    const unexplained = violations.filter((v) => {
      const known = opts.knownDefects?.find((k) => k.matches(c, v));
      if (known) stats.knownDefectHits.set(known.id, (stats.knownDefectHits.get(known.id) ?? 0) + 1);
      return !known;
    });
    if (unexplained.length > 0) {
      throw new InvariantViolation(`${t.name}: ${unexplained.join("; ")}\n  request: ${describeCase(c)}\n  answer: ${res.status} ${truncate(res.body, 300)}`);
    }
  });
  await fc.assert(property, { numRuns: opts.numRuns, ...(opts.seed !== undefined ? { seed: opts.seed } : {}), endOnFailure: false });
  stats.ms = performance.now() - started;
  return stats;
}

/** How many cases per server: ≥ 2 000 normally, ≥ 100 000 under `npm run soak`. */
export function fuzzRuns(): number {
  const explicit = Number(process.env.BECKON_FUZZ_RUNS);
  if (Number.isInteger(explicit) && explicit > 0) return explicit;
  return process.env.BECKON_SOAK ? 100_000 : 2_000;
}

/** `BECKON_FUZZ_SEED` replays a run. */
export function fuzzSeed(): number | undefined {
  const s = Number(process.env.BECKON_FUZZ_SEED);
  return Number.isInteger(s) ? s : undefined;
}

export function formatStats(name: string, s: FuzzStats): string {
  const statuses = [...s.byStatus.entries()].sort((a, b) => a[0] - b[0]).map(([k, n]) => `${k}×${n}`).join(" ");
  const neverOk = [...s.byTarget.keys()].filter((k) => k !== "unknown-route" && !s.okByTarget.has(k));
  const known = [...s.knownDefectHits.entries()].map(([k, n]) => `${k}×${n}`).join(" ");
  return `[fuzz] ${name}: ${s.cases} cases over ${s.byTarget.size} targets in ${(s.ms / 1000).toFixed(1)} s; statuses ${statuses}${s.peerErrors ? `; peer errors (502/504) ${s.peerErrors}, e.g. ${s.peerErrorSamples.join(" | ")}` : ""}${known ? `; known defects hit: ${known}` : ""}${neverOk.length ? `; never 2xx: ${neverOk.join(", ")}` : ""}`;
}
