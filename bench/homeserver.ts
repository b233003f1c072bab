/**
 * `npm run bench -- homeserver [--seconds=5] [--rooms=1000] [--users=500] [--wakeups=200] [--concurrency=16] [--json]`:
 * the homeserver's room core over real sockets on 127.0.0.1 (SQLite file, rate limits off):
 *
 * 1. bare Fastify `GET /` vs the homeserver's `GET /_matrix/client/versions` (autocannon,
 *    10 connections, `--seconds` each, run one after the other in this process);
 * 2. createRoom/s (`--rooms` rooms, `--concurrency` in flight), each a full room of 8 signed events;
 * 3. invites by user ID/s: `--users` registered users invited into one room;
 * 4. `/sync` long-poll wake-up latency: a client waits on `/sync?since=…&timeout=30000`, another
 *    sends a message; time from the send's start to the sync's answer, `--wakeups` times;
 * 5. idle RSS of a fresh homeserver process after start (one room, one user, a GC).
 *
 * Targets (issue 4): createRoom ≥ 300/s, user-ID invite ≥ 1 500/s, p99 sync wake-up ≤ 50 ms,
 * idle RSS ≤ 80 MB. Figures go in bench/RESULTS.md under "## homeserver".
 */
import { spawn } from "node:child_process";
import os from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import Fastify from "fastify";
import { createHomeserver, homeserverConfigFor } from "@beckon/homeserver";
import { freePort, tempDir } from "@beckon/test-support";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k ?? "", v ?? "true"] as const;
  }),
);
const seconds = Number(args.get("seconds") ?? "5");
const roomsN = Number(args.get("rooms") ?? "1000");
const usersN = Number(args.get("users") ?? "500");
const wakeups = Number(args.get("wakeups") ?? "200");
const concurrency = Number(args.get("concurrency") ?? "16");
const asJson = args.get("json") === "true";
if (!(seconds >= 1 && seconds <= 60)) throw new Error("--seconds must be in [1, 60]");
if (!(roomsN >= 10 && roomsN <= 100_000)) throw new Error("--rooms must be in [10, 100000]");
if (!(usersN >= 10 && usersN <= 10_000)) throw new Error("--users must be in [10, 10000]");
if (!(wakeups >= 10 && wakeups <= 10_000)) throw new Error("--wakeups must be in [10, 10000]");
if (!(concurrency >= 1 && concurrency <= 256)) throw new Error("--concurrency must be in [1, 256]");

const V3 = "/_matrix/client/v3";
const enc = encodeURIComponent;

interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}
type Autocannon = (opts: { url: string; connections: number; duration: number }) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function json(url: string, init: { method?: string; token?: string; body?: unknown } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(url, { method: init.method ?? "GET", headers, ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function must(p: Promise<{ status: number; body: Record<string, unknown> }>, what: string): Promise<Record<string, unknown>> {
  const r = await p;
  if (r.status !== 200) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function pool(n: number, c: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(c, n) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= n) return;
        await fn(i);
      }
    }),
  );
}

async function bareFastify(): Promise<AutocannonResult> {
  const app = Fastify({ logger: false });
  app.get("/", async () => ({}));
  await app.listen({ host: "127.0.0.1", port: 0 });
  const port = (app.server.address() as { port: number }).port;
  try {
    return await autocannon({ url: `http://127.0.0.1:${port}/`, connections: 10, duration: seconds });
  } finally {
    await app.close();
  }
}

/** RSS of a fresh homeserver process, idle after start (its own process: nothing else loaded). */
async function idleRss(dbUrl: string): Promise<number> {
  const port = await freePort();
  const script = `
    import { createHomeserver, homeserverConfigFor } from "@beckon/homeserver";
    const hs = await createHomeserver({ config: homeserverConfigFor({ server_name: "localhost:${port}", database_url: ${JSON.stringify(dbUrl)}, log_level: "silent", listen: "127.0.0.1:${port}" }) });
    await hs.start();
    const base = "http://127.0.0.1:${port}";
    const reg = await (await fetch(base + "/_matrix/client/v3/register", { method: "POST", body: JSON.stringify({ username: "idle", auth: { type: "m.login.dummy" } }) })).json();
    await fetch(base + "/_matrix/client/v3/createRoom", { method: "POST", headers: { authorization: "Bearer " + reg.access_token }, body: "{}" });
    await new Promise((r) => setTimeout(r, 2000));
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 500));
    process.stdout.write(String(process.memoryUsage().rss));
    await hs.stop();
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], { cwd: join(import.meta.dirname, ".."), stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      const n = Number(out.trim());
      if (code === 0 && Number.isFinite(n)) resolve(n);
      else reject(new Error(`idle RSS child exited ${code}: ${out}`));
    });
  });
}

async function main(): Promise<void> {
  const dir = tempDir("beckon-bench-hs-");
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const config = homeserverConfigFor({
    server_name: `localhost:${port}`,
    database_url: `sqlite:${join(dir.path, "hs.db")}`,
    listen: `127.0.0.1:${port}`,
    log_level: "silent",
    rate_limits: { enabled: false },
    passwords: { scrypt_n: 1024 },
  });
  const hs = await createHomeserver({ config });
  await hs.start();
  const results: Record<string, number | string> = {};
  try {
    // 1. Baseline and GET versions.
    const bare = await bareFastify();
    const versions = await autocannon({ url: `${base}/_matrix/client/versions`, connections: 10, duration: seconds });
    results.bare_fastify_rps = Math.round(bare.requests.average);
    results.versions_rps = Math.round(versions.requests.average);
    results.versions_p99_ms = versions.latency.p99;
    if (versions.non2xx > 0 || versions.errors > 0) throw new Error("GET versions had errors");

    // 2. createRoom/s.
    const alice = await must(json(`${base}${V3}/register`, { method: "POST", body: { username: "alice", auth: { type: "m.login.dummy" } } }), "register");
    const token = alice.access_token as string;
    let t0 = performance.now();
    await pool(roomsN, concurrency, async () => {
      await must(json(`${base}${V3}/createRoom`, { method: "POST", token, body: { name: "bench", preset: "private_chat" } }), "createRoom");
    });
    results.create_room_per_s = Math.round(roomsN / ((performance.now() - t0) / 1000));

    // 3. Invites by user ID into one room.
    const userIds: string[] = [];
    await pool(usersN, concurrency, async (i) => {
      const r = await must(json(`${base}${V3}/register`, { method: "POST", body: { username: `u${i}`, inhibit_login: true, auth: { type: "m.login.dummy" } } }), "register");
      userIds[i] = r.user_id as string;
    });
    const room = (await must(json(`${base}${V3}/createRoom`, { method: "POST", token, body: { preset: "private_chat" } }), "createRoom")).room_id as string;
    t0 = performance.now();
    await pool(usersN, concurrency, async (i) => {
      await must(json(`${base}${V3}/rooms/${enc(room)}/invite`, { method: "POST", token, body: { user_id: userIds[i] } }), "invite");
    });
    results.invites_per_s = Math.round(usersN / ((performance.now() - t0) / 1000));

    // 4. Sync wake-up latency.
    const syncRoom = (await must(json(`${base}${V3}/createRoom`, { method: "POST", token, body: {} }), "createRoom")).room_id as string;
    let since = (await must(json(`${base}${V3}/sync?filter=${enc(JSON.stringify({ room: { timeline: { limit: 1 } } }))}`, { token }), "sync")).next_batch as string;
    const lat: number[] = [];
    for (let i = 0; i < wakeups; i++) {
      const waiting = json(`${base}${V3}/sync?since=${since}&timeout=30000`, { token });
      await new Promise((r) => setTimeout(r, 5));
      const sent = performance.now();
      const send = json(`${base}${V3}/rooms/${enc(syncRoom)}/send/m.room.message/w${i}`, { method: "PUT", token, body: { body: `w${i}` } });
      const r = await waiting;
      lat.push(performance.now() - sent);
      await send;
      since = r.body.next_batch as string;
      const joined = (r.body.rooms as { join?: Record<string, unknown> } | undefined)?.join ?? {};
      if (!joined[syncRoom]) {
        // Woken by our own send's response racing: sync again to consume it.
        since = (await must(json(`${base}${V3}/sync?since=${since}`, { token }), "sync")).next_batch as string;
      }
    }
    lat.sort((a, b) => a - b);
    results.sync_wakeup_p50_ms = Number(percentile(lat, 50).toFixed(2));
    results.sync_wakeup_p99_ms = Number(percentile(lat, 99).toFixed(2));
  } finally {
    await hs.stop();
  }
  results.idle_rss_mb = Number(((await idleRss(`sqlite:${join(dir.path, "idle.db")}`)) / 1024 / 1024).toFixed(1));
  dir.cleanup();
  results.machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, Node ${process.version}, load ${os.loadavg()[0]?.toFixed(1)}`;
  if (asJson) {
    console.log(JSON.stringify(results));
    return;
  }
  console.log(`| measurement | value | target |
| --- | ---: | ---: |
| bare Fastify GET / (req/s) | ${results.bare_fastify_rps} | – |
| GET /_matrix/client/versions (req/s) | ${results.versions_rps} | – |
| createRoom (rooms/s, ${roomsN} rooms, ${concurrency} in flight) | ${results.create_room_per_s} | ≥ 300 |
| invite by user ID (invites/s, ${usersN} users into one room) | ${results.invites_per_s} | ≥ 1 500 |
| /sync wake-up p50 (ms) | ${results.sync_wakeup_p50_ms} | – |
| /sync wake-up p99 (ms) | ${results.sync_wakeup_p99_ms} | ≤ 50 |
| idle RSS (MB, fresh process) | ${results.idle_rss_mb} | ≤ 80 |

${results.machine}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
