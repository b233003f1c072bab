/**
 * Support for the fault tests: a homeserver and an identity server as two `beckon` CLI child
 * processes (configs from `beckon up --configs-only --config`, so settings can be merged in),
 * each of which a test can SIGKILL and restart on the same data; a real SMTP receiver; raw
 * single-attempt HTTP calls (so "acknowledged" means exactly one 200 answer).
 */
import { readFileSync } from "node:fs";
import {
  prepareBeckonStack,
  readinessUrl,
  spawnBeckonServer,
  stopLogged,
  waitFor,
  waitUntilServing,
  type BeckonServer,
  type Engine,
  type LoggedProcess,
  type ReceivedMail,
  type SmtpReceiver,
} from "@beckon/test-support";
import { IdentityClient, MatrixClient, ensureIdentityToken } from "@beckon/client";

export type { Engine };
export type Which = BeckonServer;

/** Trials: `npm test` runs `bounded`, `npm run soak` (BECKON_SOAK=1) runs `soak`. */
export function trials(bounded: number, soak: number): number {
  return process.env.BECKON_SOAK ? soak : bounded;
}


export interface PairOptions {
  engine: Engine;
  homeserver?: Record<string, unknown>;
  identityServer?: Record<string, unknown>;
  /** A PostgreSQL URL to use as is (else a fresh database on TEST_POSTGRES_URL for "postgres"). */
  databaseUrl?: string;
}

export interface Pair {
  engine: Engine;
  hsUrl: string;
  isUrl: string;
  hsName: string;
  isName: string;
  smtp: SmtpReceiver;
  dataDir: string;
  kill(which: Which, signal?: NodeJS.Signals): Promise<void>;
  start(which: Which): Promise<void>;
  log(which: Which): string;
  close(): Promise<void>;
}

export async function startPair(opts: PairOptions): Promise<Pair> {
  const stack = await prepareBeckonStack({
    prefix: "beckon-faults",
    engine: opts.engine,
    databaseUrl: opts.databaseUrl,
    homeserver: { passwords: { scrypt_n: 1024 }, rate_limits: { enabled: false }, ...opts.homeserver },
    identityServer: { rate_limits: { enabled: false }, ...opts.identityServer },
  });
  const { dir, hsUrl, isUrl } = stack;
  const children = new Map<Which, LoggedProcess>();
  const cleanup = async () => {
    await Promise.all([...children.values()].map((c) => stopLogged(c)));
    await stack.dispose();
  };
  try {
    const start = async (which: Which) => {
      const c = spawnBeckonServer(which, dir);
      children.set(which, c);
      await waitUntilServing(readinessUrl(which, which === "homeserver" ? hsUrl : isUrl), c, `the ${which}`, { intervalMs: 50 });
    };
    await Promise.all([start("identity-server"), start("homeserver")]);
    return {
      engine: opts.engine,
      hsUrl,
      isUrl,
      hsName: stack.hsName,
      isName: stack.isName,
      smtp: stack.smtp,
      dataDir: dir,
      async kill(which, signal = "SIGKILL") {
        const c = children.get(which);
        if (!c) return;
        if (c.alive()) c.proc.kill(signal);
        await c.exited;
        children.delete(which);
      },
      start,
      log(which) {
        try {
          return readFileSync(`${dir}/${which}.out`, "utf8");
        } catch {
          return "";
        }
      },
      close: cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** One HTTP attempt, no retries: status 0 when no answer arrived (connection refused or cut). */
export async function call(method: string, url: string, token?: string, body?: unknown, timeoutMs = 30_000): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
  try {
    const r = await fetch(url, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await r.text();
    let json: Record<string, unknown> = {};
    try {
      const j: unknown = JSON.parse(text);
      if (j && typeof j === "object" && !Array.isArray(j)) json = j as Record<string, unknown>;
    } catch {
      /* not JSON */
    }
    return { status: r.status, json, text };
  } catch (e) {
    return { status: 0, json: {}, text: e instanceof Error ? e.message : String(e) };
  }
}

let counter = 0;
/** A unique name per call (users, addresses). */
export function unique(prefix: string): string {
  return `${prefix}${++counter}x${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

export interface User {
  client: MatrixClient;
  userId: string;
  token: string;
  identity: IdentityClient;
  isToken: string;
}

/** Registers a user at the homeserver and an account at the identity server (via OpenID). */
export async function newUser(pair: Pair, name: string): Promise<User> {
  const client = new MatrixClient({ baseUrl: pair.hsUrl });
  await client.register({ username: unique(name), password: "correct horse battery" });
  const identity = new IdentityClient({ baseUrl: pair.isUrl, transport: client.transport });
  const isToken = await ensureIdentityToken(client, identity);
  return { client, userId: client.userId!, token: client.accessToken!, identity, isToken };
}

function mailLinks(mail: ReceivedMail): string[] {
  const text = mail.text || mail.html;
  return [...text.matchAll(/https?:\/\/[^\s<>"']+/g)].map((m) => m[0].replace(/&amp;/g, "&").replace(/[.,;:!?)]+$/, ""));
}

/** Validates `email` for `user` by the mailed link; returns the session (not yet bound). */
export async function validateByMail(pair: Pair, user: User, email: string): Promise<{ sid: string; clientSecret: string }> {
  const clientSecret = unique("secret");
  const r = await call("POST", `${pair.isUrl}/_matrix/identity/v2/validate/email/requestToken`, user.isToken, { email, client_secret: clientSecret, send_attempt: 1 });
  if (r.status !== 200) throw new Error(`requestToken answered ${r.status}: ${r.text}`);
  const sid = String(r.json["sid"]);
  const [mail] = await pair.smtp.waitForMails(1, {
    timeoutMs: 20_000,
    match: (m) => m.to.includes(email) && mailLinks(m).some((l) => l.includes("submitToken") && l.includes(`sid=${encodeURIComponent(sid)}`)),
  });
  const link = mailLinks(mail!).find((l) => l.includes("submitToken") && l.includes(`sid=${encodeURIComponent(sid)}`));
  const s = await fetch(link!, { signal: AbortSignal.timeout(10_000) });
  await s.text();
  if (s.status !== 200) throw new Error(`submitToken answered ${s.status}`);
  return { sid, clientSecret };
}

/** `POST rooms/{roomId}/invite` by email, one attempt. */
export function invite3pid(pair: Pair, inviter: User, roomId: string, email: string) {
  return call("POST", `${pair.hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`, inviter.token, {
    id_server: pair.isName,
    id_access_token: inviter.isToken,
    medium: "email",
    address: email,
  });
}

/** `POST 3pid/bind` at the identity server, one attempt. */
export function bind(pair: Pair, user: User, session: { sid: string; clientSecret: string }) {
  return call("POST", `${pair.isUrl}/_matrix/identity/v2/3pid/bind`, user.isToken, { sid: session.sid, client_secret: session.clientSecret, mxid: user.userId });
}

export interface RoomEvent {
  type: string;
  state_key?: string;
  sender: string;
  event_id: string;
  content: Record<string, unknown>;
}

/** Every event of a room's timeline (backwards pagination to the start, bounded). */
export async function timeline(pair: Pair, user: User, roomId: string): Promise<RoomEvent[]> {
  const out: RoomEvent[] = [];
  let from: string | undefined;
  for (let page = 0; page < 50; page++) {
    const q = new URLSearchParams({ dir: "b", limit: "500", ...(from ? { from } : {}) });
    const r = await call("GET", `${pair.hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?${q}`, user.token);
    if (r.status !== 200) throw new Error(`messages answered ${r.status}: ${r.text}`);
    const chunk = (r.json["chunk"] as RoomEvent[] | undefined) ?? [];
    out.push(...chunk);
    const end = r.json["end"];
    if (chunk.length === 0 || typeof end !== "string" || end === from) break;
    from = end;
  }
  return out;
}

/** The room's current state, one attempt. */
export async function roomState(pair: Pair, user: User, roomId: string): Promise<RoomEvent[]> {
  const r = await call("GET", `${pair.hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`, user.token);
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.text);
  } catch {
    parsed = undefined;
  }
  if (r.status !== 200 || !Array.isArray(parsed)) throw new Error(`state answered ${r.status}: ${r.text.slice(0, 200)}`);
  return parsed as RoomEvent[];
}

export function randomInt(max: number): number {
  return Math.floor(Math.random() * max);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
