/**
 * Support for the invite-lifecycle tests (issue 9): a server pair started through the `beckon`
 * CLI with extra settings merged into the generated configs (`beckon up --configs-only --config`),
 * optionally with the identity server in this process (for an injected clock), and small fake
 * identity servers on 127.0.0.1 that the homeserver's identity-server map points at.
 *
 * The e2e harness (harness.ts) starts stacks with the generated configs only; these tests need a
 * few settings changed (outbound timeout, fake identity servers in the map), hence this file.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  prepareBeckonStack,
  readinessUrl,
  spawnBeckonServer,
  stopLogged,
  waitUntilServing,
  type Engine,
  type LoggedProcess,
  type SmtpReceiver,
} from "@beckon/test-support";
import { createIdentityServer, loadIdentityServerConfig, type IdentityServer } from "@beckon/identity-server";
import type { Clock } from "@beckon/server-kit";
import { encodeBase64, encodeBase64Url } from "@beckon/protocol";
import { nodeCryptoProvider, signJsonSync } from "@beckon/protocol/node";
import { randomBytes } from "node:crypto";

export type { Engine };

export interface LifeStackOptions {
  engine: Engine;
  /** Merged into the generated homeserver config. */
  homeserver?: Record<string, unknown>;
  /** Merged into the generated identity-server config. */
  identityServer?: Record<string, unknown>;
  /** Run the identity server in this process with this clock (the CLI cannot inject one). */
  inProcessIdentityClock?: Clock;
}

export interface LifeStack {
  hsUrl: string;
  isUrl: string;
  hsName: string;
  /** `localhost:<is port>`: the identity server's server name. */
  isName: string;
  smtp: SmtpReceiver;
  /** Set when the identity server runs in this process. */
  is?: IdentityServer;
  logs(): string;
  close(): Promise<void>;
}

export async function startLifeStack(opts: LifeStackOptions): Promise<LifeStack> {
  const stack = await prepareBeckonStack({
    prefix: "beckon-life",
    engine: opts.engine,
    // A cheap password hash: these tests register many users on a 2-core machine.
    homeserver: { passwords: { scrypt_n: 1024 }, ...opts.homeserver },
    identityServer: opts.identityServer ?? {},
  });
  const { dir, hsUrl, isUrl } = stack;
  const children: LoggedProcess[] = [];
  let inProcess: IdentityServer | undefined;
  const cleanup = async () => {
    await Promise.all(children.map((c) => stopLogged(c)));
    await inProcess?.stop().catch(() => {});
    await stack.dispose();
  };
  try {
    const hs = spawnBeckonServer("homeserver", dir);
    children.push(hs);
    let isChild: LoggedProcess | undefined;
    if (opts.inProcessIdentityClock) {
      const config = loadIdentityServerConfig({ file: `${dir}/identity-server.yaml`, env: {}, overrides: { log_level: "warn" } });
      inProcess = await createIdentityServer({ config, clock: opts.inProcessIdentityClock });
      await inProcess.start();
    } else {
      isChild = spawnBeckonServer("identity-server", dir);
      children.push(isChild);
    }
    await Promise.all([
      waitUntilServing(readinessUrl("homeserver", hsUrl), hs, "the homeserver"),
      waitUntilServing(readinessUrl("identity-server", isUrl), isChild, "the identity server"),
    ]);
    return {
      hsUrl,
      isUrl,
      hsName: stack.hsName,
      isName: stack.isName,
      smtp: stack.smtp,
      ...(inProcess ? { is: inProcess } : {}),
      logs: () => children.map((c) => `=== ${c.name}\n${c.output().slice(-20_000)}`).join("\n"),
      close: cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

// ── fake identity servers ──────────────────────────────────────────────────

export type FakeAnswer = { status: number; json?: unknown; raw?: string } | "hang" | "destroy";
export type FakeHandler = (req: { method: string; path: string; query: URLSearchParams; headers: IncomingMessage["headers"]; body: string }) => FakeAnswer | Promise<FakeAnswer>;

export interface FakeServer {
  url: string;
  port: number;
  requests: { method: string; path: string }[];
  handler: FakeHandler;
  close(): Promise<void>;
}

/** A plain HTTP server on 127.0.0.1 answering with `handler` (replaceable at any time). */
export async function startFakeServer(handler: FakeHandler): Promise<FakeServer> {
  const hanging = new Set<ServerResponse>();
  const fake: FakeServer = { url: "", port: 0, requests: [], handler, close: async () => {} };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const u = new URL(req.url ?? "/", "http://x");
      fake.requests.push({ method: req.method ?? "GET", path: u.pathname });
      Promise.resolve(fake.handler({ method: req.method ?? "GET", path: u.pathname, query: u.searchParams, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") }))
        .then((a) => {
          if (a === "hang") return void hanging.add(res);
          if (a === "destroy") return void req.socket.destroy();
          res.writeHead(a.status, { "content-type": "application/json" });
          res.end(a.raw ?? JSON.stringify(a.json ?? {}));
        })
        .catch(() => req.socket.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  fake.port = port;
  fake.url = `http://127.0.0.1:${port}`;
  fake.close = async () => {
    for (const res of hanging) res.socket?.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return fake;
}

/** An ed25519 key pair, its public key in both alphabets. */
export interface TestKey {
  seed: Uint8Array;
  publicKey: Uint8Array;
  /** standard, unpadded */
  std: string;
  /** URL-safe, padded */
  urlPadded: string;
}

/** A fresh key whose standard and URL-safe encodings differ (so an alphabet mix-up shows). */
export function newTestKey(): TestKey {
  for (;;) {
    const seed = new Uint8Array(randomBytes(32));
    const publicKey = nodeCryptoProvider.ed25519PublicKeySync(seed);
    const std = encodeBase64(publicKey);
    if (!/[+/]/.test(std)) continue;
    return { seed, publicKey, std, urlPadded: urlSafePadded(std) };
  }
}

/** Any base64 text → URL-safe with padding. */
export function urlSafePadded(b64: string): string {
  const s = b64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return s + "=".repeat((4 - (s.length % 4)) % 4);
}

export { encodeBase64Url };

/** Signs `{mxid, token, sender}` as an identity server would for onbind / third_party_signed. */
export function signInvite(signed: { mxid: string; token: string; sender: string }, entity: string, key: TestKey, alphabet: "std" | "url" = "std"): Record<string, unknown> {
  const out = signJsonSync(signed, entity, "ed25519:0", key.seed, nodeCryptoProvider);
  if (alphabet === "url") {
    const sig = out.signatures[entity]!["ed25519:0"]!;
    return { ...signed, signatures: { [entity]: { "ed25519:0": urlSafePadded(sig) } } };
  }
  return out;
}

/**
 * A fake identity server whose lookups find nobody and whose store-invite hands out invites
 * signed with keys this test holds, so onbind requests can be built by hand. Its isvalid answer
 * follows `validity` ("ok", or "destroy" to be unreachable).
 */
export interface KeyedFakeIs {
  server: FakeServer;
  /** token → key of each invite stored. */
  invites: Map<string, { key: TestKey; roomId: string; address: string }>;
  validity: "ok" | "destroy";
  /** How store-invite encodes the public key. */
  alphabet: "std" | "urlPadded";
  /** Delay before answering store-invite (a slow identity server). */
  storeDelayMs: number;
  close(): Promise<void>;
}

export async function startKeyedFakeIs(): Promise<KeyedFakeIs> {
  const state: KeyedFakeIs = { server: undefined as unknown as FakeServer, invites: new Map(), validity: "ok", alphabet: "std", storeDelayMs: 0, close: async () => {} };
  const server = await startFakeServer(async ({ method, path, query, body }) => {
    if (path.endsWith("/hash_details")) return { status: 200, json: { lookup_pepper: "pepper", algorithms: ["sha256", "none"] } };
    if (path.endsWith("/lookup")) return { status: 200, json: { mappings: {} } };
    if (method === "POST" && path.endsWith("/store-invite")) {
      if (state.storeDelayMs) await new Promise((r) => setTimeout(r, state.storeDelayMs));
      const b = JSON.parse(body) as { room_id: string; address: string };
      const key = newTestKey();
      const token = `tok${randomBytes(9).toString("hex")}`;
      state.invites.set(token, { key, roomId: b.room_id, address: b.address });
      const pk = state.alphabet === "std" ? key.std : key.urlPadded;
      const kvu = `${server.url}/_matrix/identity/v2/pubkey/isvalid`;
      return { status: 200, json: { token, public_key: pk, public_keys: [{ public_key: pk, key_validity_url: kvu }], display_name: "som...@exa..." } };
    }
    if (path.endsWith("/pubkey/isvalid")) {
      if (state.validity === "destroy") return "destroy";
      const pk = query.get("public_key") ?? "";
      const known = [...state.invites.values()].some((i) => i.key.std === pk || i.key.urlPadded === pk);
      return { status: 200, json: { valid: known } };
    }
    return { status: 404, json: { errcode: "M_UNRECOGNIZED", error: "fake" } };
  });
  state.server = server;
  state.close = () => server.close();
  return state;
}

/** Reads a counter from a Prometheus text exposition (sum over labels). */
export async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([A-Za-z_:][\w:]*)(\{[^}]*\})?\s+([\d.eE+-]+)$/.exec(line.trim());
    if (m && m[1]!.endsWith(name)) sum += Number(m[3]);
  }
  return sum;
}
