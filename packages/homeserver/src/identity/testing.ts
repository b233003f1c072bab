/**
 * Test helpers for the 3PID pieces (used by `*.test.ts` only): a hand-written, deliberately
 * configurable identity server on 127.0.0.1 that can misbehave on demand (hang, answer HTML,
 * 5xx, Matrix 4xx, `null` lookups, SyTest-mock key ids), and a tiny fetch-based outbound client
 * with the kit's error kinds.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import assert from "node:assert/strict";
import { encodeBase64, encodeBase64Url, isMatrixError, lookupHash, signJson } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import type { OutboundLike, OutboundRequestOptions, OutboundResponse } from "./outbound.js";

/** An OutboundError look-alike. */
export class FakeOutboundError extends Error {
  override name = "OutboundError";
  readonly kind: "blocked" | "timeout" | "network" | "too_large" | "tls";
  constructor(kind: FakeOutboundError["kind"], message: string) {
    super(message);
    this.kind = kind;
  }
}

/** A fetch-based outbound client for tests: loopback allowed, timeouts, the kit's error kinds. */
export function fetchOutbound(opts: { defaultTimeoutMs?: number; onRequest?: (url: string, o: OutboundRequestOptions) => void } = {}): OutboundLike {
  return {
    async request(url, o = {}) {
      opts.onRequest?.(url, o);
      const timeout = o.timeoutMs ?? opts.defaultTimeoutMs ?? 10_000;
      let res: Response;
      try {
        const init: RequestInit = { method: o.method ?? "GET", signal: AbortSignal.timeout(timeout), redirect: "manual" };
        if (o.headers) init.headers = o.headers;
        if (o.body !== undefined) init.body = o.body;
        res = await fetch(url, init);
      } catch (e) {
        const name = e instanceof Error ? e.name : "";
        if (name === "TimeoutError" || name === "AbortError") throw new FakeOutboundError("timeout", "timed out");
        throw new FakeOutboundError("network", e instanceof Error ? e.message : String(e));
      }
      let text: string;
      try {
        text = await res.text();
      } catch {
        throw new FakeOutboundError("timeout", "timed out reading the body");
      }
      const headers: Record<string, string> = {};
      res.headers.forEach((val, k) => (headers[k] = val));
      const out: OutboundResponse = { status: res.status, headers, text, json: () => JSON.parse(text) as unknown };
      return out;
    },
  };
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage["headers"];
  body: unknown;
}

export type FakeHandler = (req: RecordedRequest, res: ServerResponse) => void | Promise<void> | "default";

export interface FakeIdentityServer {
  /** `127.0.0.1:<port>` */
  name: string;
  baseUrl: string;
  requests: RecordedRequest[];
  /** Overrides for a path (`/_matrix/identity/v2/lookup`); return "default" to fall through. */
  handlers: Map<string, FakeHandler>;
  /** Accepted IS token; `null` accepts any. */
  token: string | null;
  /** Where the token must be: both (default), only the header, or only the query. */
  tokenIn: "both" | "header" | "query";
  pepper: string;
  algorithms: string[];
  /** hashed address → mxid (or null, as SyTest's mock answers for unknown ones). */
  bindings: Map<string, string>;
  /** Answer unknown lookups with `null` values instead of omitting them. */
  nullForUnknown: boolean;
  longTerm: { seed: Uint8Array; publicKey: string };
  ephemeral: { seed: Uint8Array; publicKey: string };
  /** Public keys reported valid by `pubkey/isvalid`. */
  validKeys: Set<string>;
  storeInviteCount: number;
  /** Binds `address` (normalised) to `mxid` for lookups. */
  bind(medium: string, address: string, mxid: string): void;
  /** Signs `{mxid, token}` (plus extra) like an IS: key id `ed25519:0`, entity = `name`. */
  sign(obj: Record<string, unknown>, which?: "long" | "ephemeral"): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function keyPair(fill: number, urlSafe: boolean): { seed: Uint8Array; publicKey: string } {
  const seed = new Uint8Array(32).fill(fill);
  const pk = nodeCryptoProvider.ed25519PublicKeySync(seed);
  return { seed, publicKey: urlSafe ? encodeBase64Url(pk) : encodeBase64(pk) };
}

/**
 * A self-signed certificate for 127.0.0.1 made with the `openssl` command, or a reason why not
 * (tests skip with it).
 */
export function selfSignedCertificate(): { key: string; cert: string } | { skip: string } {
  const dir = mkdtempSync(join(tmpdir(), "beckon-cert-"));
  try {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
      { stdio: "ignore", timeout: 20_000 },
    );
    return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
  } catch (e) {
    return { skip: `openssl could not make a certificate (${e instanceof Error ? e.message : String(e)})` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts the fake identity server on 127.0.0.1, port 0 (over https with `tls`). */
export async function startFakeIdentityServer(opts: { tls?: { key: string; cert: string } } = {}): Promise<FakeIdentityServer> {
  let tokenCounter = 0;
  const fake: Omit<FakeIdentityServer, "name" | "baseUrl" | "close"> & { name: string; baseUrl: string; close: () => Promise<void> } = {
    name: "",
    baseUrl: "",
    requests: [],
    handlers: new Map(),
    token: "swordfish",
    tokenIn: "both",
    pepper: "matrixrocks",
    algorithms: ["none", "sha256"],
    bindings: new Map(),
    nullForUnknown: false,
    longTerm: keyPair(7, false),
    ephemeral: keyPair(9, true),
    validKeys: new Set(),
    storeInviteCount: 0,
    bind(medium, address, mxid) {
      fake.bindings.set(`${address} ${medium}`, mxid);
    },
    async sign(obj, which = "long") {
      const seed = which === "long" ? fake.longTerm.seed : fake.ephemeral.seed;
      return signJson(obj, fake.name, "ed25519:0", seed, nodeCryptoProvider);
    },
    close: async () => {},
  };
  fake.validKeys.add(fake.longTerm.publicKey);
  fake.validKeys.add(fake.ephemeral.publicKey);

  const authorized = (r: RecordedRequest): boolean => {
    if (fake.token === null) return true;
    const header = r.headers.authorization === `Bearer ${fake.token}`;
    const query = r.query.get("access_token") === fake.token;
    if (fake.tokenIn === "header") return header;
    if (fake.tokenIn === "query") return query;
    return header || query;
  };

  const defaultRoute = async (r: RecordedRequest, res: ServerResponse): Promise<void> => {
    const v2 = "/_matrix/identity/v2";
    if (r.path === `${v2}/pubkey/isvalid` || r.path === `${v2}/pubkey/ephemeral/isvalid`) {
      json(res, 200, { valid: fake.validKeys.has(r.query.get("public_key") ?? "") });
      return;
    }
    if (r.path === `${v2}/3pid/unbind`) {
      json(res, 200, {});
      return;
    }
    if (!authorized(r)) {
      json(res, 401, { errcode: "M_UNAUTHORIZED", error: "Unrecognised access token" });
      return;
    }
    const body = (r.body ?? {}) as Record<string, unknown>;
    if (r.path === `${v2}/hash_details` && r.method === "GET") {
      json(res, 200, { lookup_pepper: fake.pepper, algorithms: fake.algorithms });
      return;
    }
    if (r.path === `${v2}/lookup` && r.method === "POST") {
      const addresses = Array.isArray(body.addresses) ? (body.addresses as string[]) : [];
      if (body.pepper !== fake.pepper) {
        json(res, 400, { errcode: "M_INVALID_PEPPER", error: "wrong pepper", algorithm: "sha256", lookup_pepper: fake.pepper });
        return;
      }
      const mappings: Record<string, string | null> = {};
      for (const a of addresses) {
        let hit: string | undefined;
        for (const [plain, mxid] of fake.bindings) {
          const [addr, medium] = plain.split(" ") as [string, string];
          const h = body.algorithm === "sha256" ? lookupHash(addr, medium, fake.pepper) : plain;
          if (h === a) hit = mxid;
        }
        if (hit !== undefined) mappings[a] = hit;
        else if (fake.nullForUnknown) mappings[a] = null;
      }
      json(res, 200, { mappings });
      return;
    }
    if (r.path === `${v2}/store-invite` && r.method === "POST") {
      fake.storeInviteCount++;
      const address = String(body.address ?? "").toLowerCase();
      const bound = fake.bindings.get(`${address} ${String(body.medium)}`);
      if (bound !== undefined) {
        json(res, 400, { errcode: "M_THREEPID_IN_USE", error: "bound", mxid: bound });
        return;
      }
      tokenCounter++;
      json(res, 200, {
        token: `tok${tokenCounter}`,
        display_name: "Bob",
        public_key: fake.longTerm.publicKey,
        public_keys: [
          { public_key: fake.longTerm.publicKey, key_validity_url: `${fake.baseUrl}${v2}/pubkey/isvalid` },
          { public_key: fake.ephemeral.publicKey, key_validity_url: `${fake.baseUrl}${v2}/pubkey/ephemeral/isvalid` },
        ],
      });
      return;
    }
    if (r.path === `${v2}/3pid/bind` && r.method === "POST") {
      json(res, 200, { medium: "email", address: "bob@example.org", mxid: body.mxid, not_before: 0, not_after: 4_000_000_000_000, ts: 0, signatures: {} });
      return;
    }
    json(res, 404, { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" });
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://x");
      const text = Buffer.concat(chunks).toString("utf8");
      let body: unknown;
      try {
        body = text === "" ? undefined : (JSON.parse(text) as unknown);
      } catch {
        body = text;
      }
      const r: RecordedRequest = { method: req.method ?? "GET", path: url.pathname, query: url.searchParams, headers: req.headers, body };
      fake.requests.push(r);
      void (async () => {
        const h = fake.handlers.get(r.path);
        if (h) {
          const out = await h(r, res);
          if (out !== "default") return;
        }
        await defaultRoute(r, res);
      })().catch(() => {
        if (!res.headersSent) json(res, 500, { errcode: "M_UNKNOWN", error: "fake IS crashed" });
      });
    });
  };
  const server: Server = opts.tls ? (createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }, onRequest) as unknown as Server) : createServer(onRequest);
  const sockets = new Set<import("node:net").Socket>();
  server.on("connection", (s: import("node:net").Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  fake.name = `127.0.0.1:${port}`;
  fake.baseUrl = `${opts.tls ? "https" : "http"}://127.0.0.1:${port}`;
  fake.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return fake;
}

/** Asserts that `p` rejects with a MatrixError of this errcode and status. */
export async function rejectsMatrix(p: Promise<unknown>, errcode: string, status: number): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isMatrixError(e), `expected a MatrixError, got ${String(e)}`);
    assert.equal(e.errcode, errcode, e.message);
    assert.equal(e.status, status, e.message);
    return true;
  });
}
