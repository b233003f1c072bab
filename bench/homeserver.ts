/**
 * `npm run bench -- homeserver [--seconds=5] [--rooms=1000] [--users=500] [--wakeups=200] [--concurrency=16] [--json]`:
 * the homeserver's room core over real sockets on 127.0.0.1 (SQLite file, rate limits off):
 *
 * 1. bare Fastify `GET /` vs the homeserver's `GET /_matrix/client/versions` (autocannon,
 *    10 connections, `--seconds` each, run one after the other in this process);
 * 2. createRoom/s (`--rooms` rooms, `--concurrency` in flight), each a full room of 8 signed events;
 * 3. invites by user ID/s: `--users` registered users invited into one room (after the same
 *    invites into three warm-up rooms, not measured);
 * 4. `/sync` long-poll wake-up latency: a client waits on `/sync?since=…&timeout=30000`, another
 *    sends a message; time from the send's start to the sync's answer, `--wakeups` times;
 * 5. idle RSS of a fresh homeserver process after start (one room, one user, a GC), with default
 *    V8 flags and as `beckon up` starts it (server-kit `serverProcessSettings`: a 2 MB young
 *    generation, malloc settings). The server measured in 2–4 runs as `beckon up` runs it too.
 *
 * Targets (issue 4): createRoom ≥ 300/s, user-ID invite ≥ 1 500/s, p99 sync wake-up ≤ 50 ms,
 * idle RSS ≤ 80 MB. Figures go in bench/RESULTS.md under "## homeserver".
 */
import { spawn } from "node:child_process";
import os from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import Fastify from "fastify";
import { freePort, tempDir } from "@beckon/test-support";
import { serverProcessSettings } from "@beckon/server-kit/process-settings";
import { percentile, json, must, pool, benchArgs, extraNodeFlags } from "./lib/index.js";

const args = benchArgs();
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
async function idleRss(dbUrl: string, nodeFlags: string[] = [], env: Record<string, string> = {}): Promise<number> {
  const port = await freePort();
  const script = `
        import { createHomeserver, homeserverConfigFor } from "@beckon/homeserver";
        import http from "node:http";
        const hs = await createHomeserver({ config: homeserverConfigFor({ server_name: "localhost:${port}", database_url: ${JSON.stringify(dbUrl)}, log_level: "silent", listen: "127.0.0.1:${port}" }) });
    await hs.start();
    const base = "http://127.0.0.1:${port}";
    // node:http, not fetch: fetch would load undici (5-10 MB) into the process being measured.
    const post = (path, body, token) => new Promise((resolve, reject) => {
      const r = http.request(base + path, { method: "POST", headers: token ? { authorization: "Bearer " + token } : {} }, (res) => {
        let d = "";
        res.on("data", (c) => (d += c));
        res.on("end", () => resolve(JSON.parse(d)));
      });
      r.on("error", reject);
      r.end(body);
    });
    const reg = await post("/_matrix/client/v3/register", JSON.stringify({ username: "idle", auth: { type: "m.login.dummy" } }));
    await post("/_matrix/client/v3/createRoom", "{}", reg.access_token);
    await new Promise((r) => setTimeout(r, 2000));
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 500));
    process.stdout.write(String(process.memoryUsage().rss));
    await hs.stop();
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeFlags, "--expose-gc", "--input-type=module", "-e", script], {
      cwd: join(import.meta.dirname, ".."),
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...env, ...process.env },
    });
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

/** A homeserver in its own process (so its CPU time and memory are its own), on a SQLite file. */
async function startServerProcess(dbUrl: string, port: number): Promise<{ stop(): Promise<void> }> {
  const script = `
        import { createHomeserver, homeserverConfigFor } from "@beckon/homeserver";
        const hs = await createHomeserver({ config: homeserverConfigFor({ server_name: "localhost:${port}", database_url: ${JSON.stringify(dbUrl)}, log_level: "silent", listen: "127.0.0.1:${port}", rate_limits: { enabled: false }, passwords: { scrypt_n: 1024 } }) });
    await hs.start();
    process.stdout.write("ready\\n");
    process.on("SIGTERM", () => void hs.stop().then(() => process.exit(0)));
  `;
  // As `beckon up` runs it (node flags, malloc settings).
  const settings = serverProcessSettings("homeserver");
  const child = spawn(process.execPath, [...settings.nodeFlags, ...extraNodeFlags("homeserver"), "--input-type=module", "-e", script], {
    cwd: join(import.meta.dirname, ".."),
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...settings.env, ...process.env },
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("homeserver did not start")), 60_000);
    child.stdout.on("data", (d: Buffer) => {
      if (d.toString().includes("ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => reject(new Error(`homeserver exited ${code}`)));
  });
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
        child.on("exit", () => {
          clearTimeout(t);
          resolve();
        });
        child.kill("SIGTERM");
      }),
  };
}

/** The server process's CPU seconds so far (its own `/metrics`). */
async function serverCpuSeconds(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = /^beckon_hs_process_cpu_seconds_total (\S+)$/m.exec(text);
  if (!m) throw new Error("no process_cpu_seconds_total in /metrics");
  return Number(m[1]);
}

async function main(): Promise<void> {
  const dir = tempDir("beckon-bench-hs-");
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = await startServerProcess(`sqlite:${join(dir.path, "hs.db")}`, port);
  const results: Record<string, number | string> = {};
  const measure = async <T>(fn: () => Promise<T>): Promise<{ value: T; wallS: number; cpuS: number }> => {
    const c0 = await serverCpuSeconds(base);
    const t0 = performance.now();
    const value = await fn();
    const wallS = (performance.now() - t0) / 1000;
    return { value, wallS, cpuS: (await serverCpuSeconds(base)) - c0 };
  };
  try {
    // 1. Baseline and GET versions.
    const bare = await bareFastify();
    const versions = await autocannon({ url: `${base}/_matrix/client/versions`, connections: 10, duration: seconds });
    results.bare_fastify_rps = Math.round(bare.requests.average);
    results.versions_rps = Math.round(versions.requests.average);
    if (versions.non2xx > 0 || versions.errors > 0) throw new Error("GET versions had errors");

    // 2. createRoom/s.
    const alice = await must(json(`${base}${V3}/register`, { method: "POST", body: { username: "alice", auth: { type: "m.login.dummy" } } }), "register");
    const token = alice.access_token as string;
    const cr = await measure(() =>
      pool(roomsN, concurrency, async () => {
        await must(json(`${base}${V3}/createRoom`, { method: "POST", token, body: { name: "bench", preset: "private_chat" } }), "createRoom");
      }),
    );
    results.create_room_per_s = Math.round(roomsN / cr.wallS);
    results.create_room_cpu_ms = Number(((cr.cpuS * 1000) / roomsN).toFixed(2));

    // 3. Invites by user ID into one room.
    const userIds: string[] = [];
    await pool(usersN, concurrency, async (i) => {
      const r = await must(json(`${base}${V3}/register`, { method: "POST", body: { username: `u${i}`, inhibit_login: true, auth: { type: "m.login.dummy" } } }), "register");
      userIds[i] = r.user_id as string;
    });
    const inviteAll = (roomId: string) =>
      pool(usersN, concurrency, async (i) => {
        await must(json(`${base}${V3}/rooms/${enc(roomId)}/invite`, { method: "POST", token, body: { user_id: userIds[i] } }), "invite");
      });
    // Warm-up, not measured: the same invites into three other rooms, so the JIT has compiled
    // and optimised the invite path (the measured phase alone lasts well under a second; after
    // one warm-up room it still ran ~40 % slower than in steady state).
    for (let w = 0; w < 3; w++) {
      await inviteAll((await must(json(`${base}${V3}/createRoom`, { method: "POST", token, body: { preset: "private_chat" } }), "createRoom")).room_id as string);
    }
    const room = (await must(json(`${base}${V3}/createRoom`, { method: "POST", token, body: { preset: "private_chat" } }), "createRoom")).room_id as string;
    const inv = await measure(() => inviteAll(room));
    results.invites_per_s = Math.round(usersN / inv.wallS);
    results.invite_cpu_ms = Number(((inv.cpuS * 1000) / usersN).toFixed(2));

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
    }
    lat.sort((a, b) => a - b);
    results.sync_wakeup_p50_ms = Number(percentile(lat, 50).toFixed(2));
    results.sync_wakeup_p99_ms = Number(percentile(lat, 99).toFixed(2));
  } finally {
    await server.stop();
  }
  results.idle_rss_mb = Number(((await idleRss(`sqlite:${join(dir.path, "idle.db")}`)) / 1024 / 1024).toFixed(1));
  const settings = serverProcessSettings("homeserver");
  results.idle_rss_beckon_up_mb = Number(((await idleRss(`sqlite:${join(dir.path, "idle2.db")}`, settings.nodeFlags, settings.env)) / 1024 / 1024).toFixed(1));
  results.beckon_up_settings = `${settings.nodeFlags.join(" ")} ${Object.entries(settings.env).map(([k, v]) => `${k}=${v}`).join(" ")}`;
  dir.cleanup();
  results.machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, Node ${process.version}, load average ${os.loadavg()[0]?.toFixed(1)} at the end`;
  if (asJson) {
    console.log(JSON.stringify(results));
    return;
  }
  const perCore = (ms: unknown) => (typeof ms === "number" && ms > 0 ? Math.round(1000 / ms) : "–");
  console.log(`| measurement | value | server CPU per op | ops/s per free core (1 / CPU) | target |
| --- | ---: | ---: | ---: | ---: |
| bare Fastify GET / (req/s, in the bench process) | ${results.bare_fastify_rps} | | | – |
| GET /_matrix/client/versions (req/s) | ${results.versions_rps} | | | – |
| createRoom (rooms/s, ${roomsN} rooms, ${concurrency} in flight) | ${results.create_room_per_s} | ${results.create_room_cpu_ms} ms | ${perCore(results.create_room_cpu_ms)} | ≥ 300 |
| invite by user ID (invites/s, ${usersN} users into one room) | ${results.invites_per_s} | ${results.invite_cpu_ms} ms | ${perCore(results.invite_cpu_ms)} | ≥ 1 500 |
| /sync wake-up p50 (ms) | ${results.sync_wakeup_p50_ms} | | | – |
| /sync wake-up p99 (ms) | ${results.sync_wakeup_p99_ms} | | | ≤ 50 |
| idle RSS (MB, fresh process, default flags) | ${results.idle_rss_mb} | | | ≤ 80 |
| idle RSS (MB, fresh process as \`beckon up\` starts it: ${results.beckon_up_settings}) | ${results.idle_rss_beckon_up_mb} | | | ≤ 80 |

${results.machine}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
