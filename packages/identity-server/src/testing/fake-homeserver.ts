/**
 * A fake homeserver on 127.0.0.1 for identity-server tests: `openid/userinfo`, a signed
 * `/_matrix/key/v2/server` (with and without trailing slash) and a scriptable
 * `/_matrix/federation/v1/3pid/onbind` that records what it receives.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { encodeBase64, signJson } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";

export type OnbindBehaviour = "up" | "down" | "refuse" | "flaky" | "hang" | "ratelimit";

export interface FakeHomeserver {
  serverName: string;
  baseUrl: string;
  port: number;
  seed: Uint8Array;
  keyId: string;
  publicKey: string;
  /** OpenID access token → user id. */
  openidTokens: Map<string, string>;
  /** Every onbind body received (parsed), including failed attempts. */
  onbinds: { body: Record<string, unknown>; status: number }[];
  /** Bodies of onbinds answered 2xx. */
  delivered: Record<string, unknown>[];
  behaviour: OnbindBehaviour;
  /** For "flaky": answer 500 on every n-th request (default: every other). */
  flakyEvery: number;
  /** Makes a token usable for register. */
  issueOpenId(userId: string): { access_token: string; token_type: string; matrix_server_name: string; expires_in: number };
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

export async function startFakeHomeserver(opts: { serverName?: string; port?: number } = {}): Promise<FakeHomeserver> {
  const seed = nodeCryptoProvider.randomBytes(32);
  const keyId = "ed25519:fake";
  const publicKey = encodeBase64(nodeCryptoProvider.ed25519PublicKeySync(seed));
  let counter = 0;
  let tokenN = 0;
  const fake = {} as FakeHomeserver;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://x");
      const body = await readBody(req);
      if (url.pathname === "/_matrix/federation/v1/openid/userinfo") {
        const t = url.searchParams.get("access_token") ?? "";
        const sub = fake.openidTokens.get(t);
        if (!sub) return send(res, 401, { errcode: "M_UNKNOWN_TOKEN", error: "unknown" });
        return send(res, 200, { sub });
      }
      if (url.pathname === "/_matrix/key/v2/server" || url.pathname === "/_matrix/key/v2/server/") {
        const doc = await signJson(
          { server_name: fake.serverName, valid_until_ts: Date.now() + 3_600_000, verify_keys: { [keyId]: { key: publicKey } }, old_verify_keys: {} },
          fake.serverName,
          keyId,
          seed,
          nodeCryptoProvider,
        );
        return send(res, 200, doc);
      }
      if (url.pathname === "/_matrix/federation/v1/3pid/onbind" && (req.method === "POST" || req.method === "PUT")) {
        let parsed: Record<string, unknown> = {};
        try {
          parsed = JSON.parse(body) as Record<string, unknown>;
        } catch {
          /* keep empty */
        }
        counter++;
        let status = 200;
        if (fake.behaviour === "down") status = 503;
        else if (fake.behaviour === "refuse") status = 400;
        else if (fake.behaviour === "ratelimit") status = 429;
        else if (fake.behaviour === "flaky" && counter % fake.flakyEvery !== 0) status = 500;
        else if (fake.behaviour === "hang") {
          fake.onbinds.push({ body: parsed, status: 0 });
          return; // never answers
        }
        fake.onbinds.push({ body: parsed, status });
        if (status === 200) fake.delivered.push(parsed);
        return send(res, status, status === 200 ? {} : { errcode: status === 400 ? "M_BAD_JSON" : "M_UNKNOWN", error: "scripted" });
      }
      send(res, 404, { errcode: "M_UNRECOGNIZED", error: "not here" });
    })().catch(() => {
      res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  Object.assign(fake, {
    serverName: opts.serverName ?? `localhost:${port}`,
    baseUrl: `http://127.0.0.1:${port}`,
    port,
    seed,
    keyId,
    publicKey,
    openidTokens: new Map<string, string>(),
    onbinds: [],
    delivered: [],
    behaviour: "up" as OnbindBehaviour,
    flakyEvery: 2,
    issueOpenId(userId: string) {
      const t = `oid${++tokenN}_${Math.random().toString(36).slice(2)}`;
      fake.openidTokens.set(t, userId);
      return { access_token: t, token_type: "Bearer", matrix_server_name: fake.serverName, expires_in: 3600 };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
  return fake;
}
