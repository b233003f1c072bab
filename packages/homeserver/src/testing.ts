/**
 * Test helpers (used by this package's tests and by benchmarks): a homeserver on a temporary
 * SQLite file, driven through `app.inject()`.
 */
import { join } from "node:path";
import { tempDir } from "@beckon/test-support";
import type { Clock } from "@beckon/server-kit";
import { createHomeserver, type Homeserver } from "./app.js";
import { homeserverConfigFor } from "./config.js";
import type { OutboundLike } from "./identity/outbound.js";

export interface TestHomeserver {
  hs: Homeserver;
  dir: string;
  dbUrl: string;
  close(): Promise<void>;
}

export async function startTestHomeserver(
  opts: { overrides?: Record<string, unknown>; clock?: Clock; outbound?: OutboundLike; dbUrl?: string; dir?: string } = {},
): Promise<TestHomeserver> {
  const tmp = opts.dir ? undefined : tempDir("beckon-hs-");
  const dir = opts.dir ?? tmp!.path;
  const dbUrl = opts.dbUrl ?? `sqlite:${join(dir, "hs.db")}`;
  const config = homeserverConfigFor({
    server_name: "localhost:8008",
    database_url: dbUrl,
    log_level: "silent",
    passwords: { scrypt_n: 1024 },
    ...(opts.overrides ?? {}),
  });
  const hs = await createHomeserver({ config, ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.outbound ? { outbound: opts.outbound } : {}) });
  return {
    hs,
    dir,
    dbUrl,
    async close() {
      await hs.stop();
      tmp?.cleanup();
    },
  };
}

export interface Res {
  status: number;
  body: Record<string, unknown>;
}

/** One JSON request through `inject`. */
export async function call(hs: Homeserver, method: "GET" | "POST" | "PUT" | "DELETE", url: string, opts: { token?: string; body?: unknown } = {}): Promise<Res> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const r = await hs.app.inject({ method, url, headers, ...(opts.body !== undefined ? { payload: JSON.stringify(opts.body) } : {}) });
  const text = r.body;
  let body: Record<string, unknown> = {};
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    body = { raw: text };
  }
  return { status: r.statusCode, body };
}

export interface TestUser {
  userId: string;
  token: string;
  deviceId: string;
}

/** Registers `name` with `m.login.dummy`. */
export async function registerUser(hs: Homeserver, name: string, password = "correct horse"): Promise<TestUser> {
  const r = await call(hs, "POST", "/_matrix/client/v3/register", { body: { username: name, password, auth: { type: "m.login.dummy" } } });
  if (r.status !== 200) throw new Error(`register ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return { userId: r.body.user_id as string, token: r.body.access_token as string, deviceId: r.body.device_id as string };
}

export const enc = encodeURIComponent;
