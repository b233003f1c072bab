/**
 * `npm run bench -- identity [--seconds=5] [--big=1000000] [--invites=2000] [--concurrency=32] [--json]`:
 * the identity server over real sockets on 127.0.0.1, run as operators run it — a
 * `beckon identity-server --config <file>` child process with the node flags `beckon up` gives
 * it (so the load generator shares no event loop with it and the RSS is the real server's), on
 * an SQLite file, rate limits off:
 *
 * 1. bare Fastify `GET /` vs our status endpoint `GET /_matrix/identity/v2` (autocannon, 10
 *    connections; 8 alternating rounds of `--seconds`/2 each, the median ratio counts);
 * 2. `POST lookup` with 1 and with 1000 sha256 hashes at 10 000 and at `--big` associations
 *    (bulk-inserted with one direct SQLite transaction);
 * 3. `store-invite`/s with every mail handed to a local SMTP server (test-support's receiver),
 *    checking that no mail is lost;
 * 4. the server process's RSS at `--big` associations.
 *
 * Targets (issue 3): status ≥ 70 % of bare Fastify; single lookup ≥ 5 000 req/s at 1 M;
 * 1000-hash lookup ≥ 500 000 hashes/s; store-invite ≥ 1 000/s; RSS ≤ 100 MB at 1 M
 * (excluding the SQLite page cache). Figures go in bench/RESULTS.md under "## identity server".
 */
import { createHash } from "node:crypto";
import os from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import Fastify from "fastify";
import Database from "better-sqlite3";
import { freePort, spawnUntilReady, startSmtpSink, tempDir } from "@beckon/test-support";
import { serverProcessSettings } from "@beckon/server-kit/process-settings";
import { benchArgs, cpuMs, json, rssMb, startBeckonServer, type BeckonServerProcess } from "./lib/index.js";

const args = benchArgs();
const PEPPER = "benchpepper";
const TOKEN = "benchtoken";
const USER = "@bench:hs.bench";

// ── child modes ────────────────────────────────────────────────────────────────
if (args.get("bare") === "true") {
  const app = Fastify({ logger: false });
  app.get("/", async () => ({}));
  await app.listen({ host: "127.0.0.1", port: 0 });
  const addr = app.server.address();
  process.stdout.write(`READY http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}\n`);
  await new Promise(() => {});
}
// ── parent ─────────────────────────────────────────────────────────────────────
const seconds = Number(args.get("seconds") ?? "5");
const big = Number(args.get("big") ?? "1000000");
const invitesN = Number(args.get("invites") ?? "2000");
const concurrency = Number(args.get("concurrency") ?? "32");
const asJson = args.get("json") === "true";
// The flags `beckon up` starts the identity server with (server-kit process-settings.ts) unless given.
const nodeFlagsArg = args.get("node-flags");
const nodeFlags = nodeFlagsArg === undefined ? undefined : nodeFlagsArg.split(" ").filter(Boolean);
if (!(seconds >= 1 && seconds <= 60)) throw new Error("--seconds must be in [1, 60]");
if (!(big >= 10_000 && big <= 5_000_000)) throw new Error("--big must be in [10000, 5000000]");
if (!(invitesN >= 10 && invitesN <= 100_000)) throw new Error("--invites must be in [10, 100000]");
if (!(concurrency >= 1 && concurrency <= 256)) throw new Error("--concurrency must be in [1, 256]");

interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}
type Autocannon = (opts: { url: string; connections: number; duration: number; method?: string; headers?: Record<string, string>; body?: string; pipelining?: number }) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

/** `beckon identity-server` on a free port, with the bench's access token in its database. */
async function startIdentityServer(dbPath: string, smtpUrl: string): Promise<BeckonServerProcess> {
  const port = await freePort();
  const server = await startBeckonServer(
    "identity-server",
    {
      server_name: "bench.is",
      public_base_url: "http://127.0.0.1:1",
      listen: `127.0.0.1:${port}`,
      database_url: `sqlite:${dbPath}`,
      smtp_url: smtpUrl,
      rate_limits: { enabled: false },
      log_level: "silent",
      pepper: PEPPER,
      metrics: { enabled: true },
    },
    { configFile: join(dir.path, "identity-server.yaml"), readyPath: "/_matrix/identity/v2", ...(nodeFlags ? { nodeFlags } : {}) },
  );
  // The bench's access token, written straight into the database (the server reads it from there).
  const db = new Database(dbPath);
  db.prepare("INSERT OR IGNORE INTO is_accounts (user_id, created_ts, consent_version) VALUES (?, ?, NULL)").run(USER, Date.now());
  db.prepare("INSERT OR IGNORE INTO is_access_tokens (token, user_id, created_ts) VALUES (?, ?, ?)").run(TOKEN, USER, Date.now());
  db.close();
  return server;
}

const dir = tempDir("beckon-bench-is-");
const hashOf = (i: number) => createHash("sha256").update(`user${i}@bench.example email ${PEPPER}`).digest("base64url");

function bulkInsert(dbPath: string, from: number, to: number): number {
  const started = performance.now();
  const db = new Database(dbPath);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = OFF");
  const stmt = db.prepare(
    "INSERT OR IGNORE INTO is_associations (medium, address, mxid, ts, not_before, not_after, lookup_hash) VALUES ('email', ?, ?, ?, ?, ?, ?)",
  );
  const now = Date.now();
  const run = db.transaction((a: number, b: number) => {
    for (let i = a; i < b; i++) stmt.run(`user${i}@bench.example`, `@user${i}:hs.bench`, now, now, now + 1e12, hashOf(i));
  });
  for (let i = from; i < to; i += 100_000) run(i, Math.min(to, i + 100_000));
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
  return (performance.now() - started) / 1000;
}

const results: Record<string, number | string> = {};
// A minimal SMTP receiver (see test-support smtp-sink.ts): the mail relay stands in for one on
// another machine, so it should take as little of the two cores the server runs on as possible.
const smtp = await startSmtpSink();
const dbPath = join(dir.path, "is.db");
try {
  // 1. bare Fastify vs status: both processes up, measured alternately (8 rounds of
  // `seconds`/2 each), so a change in the machine's load hits both alike; the median ratio counts.
  const bare = await spawnUntilReady([new URL(import.meta.url).pathname, "--bare"]);
  const is = await startIdentityServer(dbPath, smtp.url);
  const bareRps: number[] = [];
  const statusRps: number[] = [];
  const ratios: number[] = [];
  let statusCpuMs = 0;
  let bareCpuMs = 0;
  let bareRequests = 0;
  let statusRequests = 0;
  // Short alternating rounds: the machine's own speed drifts by tens of percent within
  // minutes here, and a ratio of two long runs measured a minute apart mostly measures that.
  const roundSeconds = Math.max(1, Math.round(seconds / 2));
  for (let round = 0; round < 8; round++) {
    const bc = cpuMs(bare.child.pid!);
    const b = await autocannon({ url: `${bare.url}/`, connections: 10, duration: roundSeconds });
    bareCpuMs += cpuMs(bare.child.pid!) - bc;
    bareRequests += b.requests.average * roundSeconds;
    const c = cpuMs(is.pid);
    const st = await autocannon({ url: `${is.url}/_matrix/identity/v2`, connections: 10, duration: roundSeconds });
    statusCpuMs += cpuMs(is.pid) - c;
    statusRequests += st.requests.average * roundSeconds;
    bareRps.push(b.requests.average);
    statusRps.push(st.requests.average);
    ratios.push(st.requests.average / b.requests.average);
  }
  bare.child.kill("SIGKILL");
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  results.status_server_cpu_us_per_req = Math.round((statusCpuMs * 1000) / statusRequests);
  results.bare_fastify_server_cpu_us_per_req = Math.round((bareCpuMs * 1000) / bareRequests);
  results.bare_fastify_rps = Math.round(median(bareRps));
  results.status_rps = Math.round(median(statusRps));
  results.status_vs_bare = Number(median(ratios).toFixed(2));
  results.status_vs_bare_rounds = ratios.map((r) => r.toFixed(2)).join(" / ");

  // 2. lookups at 10 000 and at `big` associations.
  const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
  const lookup = async (label: string) => {
    const one = JSON.stringify({ algorithm: "sha256", pepper: PEPPER, addresses: [hashOf(4242)] });
    const many = JSON.stringify({
      algorithm: "sha256",
      pepper: PEPPER,
      addresses: Array.from({ length: 1000 }, (_, i) => (i % 2 === 0 ? hashOf(i * 7) : `miss${i}`)),
    });
    let c = cpuMs(is.pid);
    const r1 = await autocannon({ url: `${is.url}/_matrix/identity/v2/lookup`, connections: 10, duration: seconds, method: "POST", headers: auth, body: one });
    results[`lookup1_server_cpu_us_per_req_${label}`] = Math.round(((cpuMs(is.pid) - c) * 1000) / (r1.requests.average * seconds));
    c = cpuMs(is.pid);
    const r1000 = await autocannon({ url: `${is.url}/_matrix/identity/v2/lookup`, connections: 10, duration: seconds, method: "POST", headers: auth, body: many });
    const cpu1000 = cpuMs(is.pid) - c;
    results[`lookup1000_server_cpu_ms_per_req_${label}`] = Number((cpu1000 / (r1000.requests.average * seconds)).toFixed(2));
    results[`lookup1000_hashes_per_server_cpu_s_${label}`] = Math.round((r1000.requests.average * seconds * 1000) / (cpu1000 / 1000));
    if (r1.non2xx || r1000.non2xx) throw new Error(`lookup errors: ${r1.non2xx} / ${r1000.non2xx}`);
    results[`lookup1_rps_${label}`] = Math.round(r1.requests.average);
    results[`lookup1_p99_ms_${label}`] = r1.latency.p99;
    results[`lookup1000_rps_${label}`] = Math.round(r1000.requests.average);
    results[`lookup1000_hashes_per_s_${label}`] = Math.round(r1000.requests.average * 1000);
  };
  results.insert_10k_s = Number(bulkInsert(dbPath, 0, 10_000).toFixed(2));
  await lookup("10k");
  results[`insert_to_${big}_s`] = Number(bulkInsert(dbPath, 10_000, big).toFixed(1));
  await lookup(big >= 1_000_000 ? `${big / 1_000_000}M` : String(big));

  // 3. store-invite with mail (every mail must arrive). A warm-up burst first (its mails
  // delivered before the clock starts), as for the homeserver's invites: the measured phase
  // should not include the JIT compiling the store-invite and mail paths.
  let failures = 0;
  const storeInvites = async (from: number, count: number) => {
    let next = from;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (;;) {
          const i = next++;
          if (i >= from + count) return;
          const res = await json(`${is.url}/_matrix/identity/v2/store-invite`, {
            method: "POST",
            token: TOKEN,
            body: { medium: "email", address: `invitee${i}@bench.example`, room_id: "!room:hs.bench", sender: USER, room_name: "Bench", sender_display_name: "Bench" },
          });
          if (res.status !== 200) failures++;
        }
      }),
    );
  };
  const warmN = Math.max(100, Math.floor(invitesN / 5));
  const beforeWarm = smtp.mails.length;
  await storeInvites(invitesN, warmN);
  await smtp.waitForMails(beforeWarm + warmN, { timeoutMs: 60_000 });
  const before = smtp.mails.length;
  const t0 = performance.now();
  const c0 = cpuMs(is.pid);
  const lg0 = cpuMs(process.pid);
  await storeInvites(0, invitesN);
  const inviteSeconds = (performance.now() - t0) / 1000;
  results.store_invite_per_s = Math.round(invitesN / inviteSeconds);
  results.store_invite_server_cpu_ms_per_invite = Number(((cpuMs(is.pid) - c0) / invitesN).toFixed(2));
  results.store_invite_load_generator_cpu_ms_per_invite = Number(((cpuMs(process.pid) - lg0) / invitesN).toFixed(2));
  results.mails_received_during_invites = smtp.mails.length - before;
  const c1 = cpuMs(is.pid);
  results.store_invite_failures = failures;
  const mailStart = performance.now();
  await smtp.waitForMails(before + invitesN, { timeoutMs: 120_000 });
  results.mails_received = smtp.mails.length - before;
  results.mail_drain_s_after_last_invite = Number(((performance.now() - mailStart) / 1000).toFixed(1));
  results.mail_drain_server_cpu_ms = Math.round(cpuMs(is.pid) - c1);
  results.mails_per_s_overall = Math.round(invitesN / ((performance.now() - t0) / 1000));

  // 4. RSS of the server process at `big` associations (after the runs; the SQLite page cache is ~2 MB by default).
  results[`server_rss_mb_after_load_at_${big}`] = Number(rssMb(is.pid).toFixed(1));
  results[`server_rss_anon_mb_after_load_at_${big}`] = Number(rssMb(is.pid, "RssAnon").toFixed(1));
  const metricsText = await (await fetch(`${is.url}/metrics`)).text();
  const heap = /beckon_is_nodejs_heap_size_used_bytes (\d+(?:\.\d+)?)/.exec(metricsText);
  if (heap?.[1]) results.server_heap_used_mb_after_load = Number((Number(heap[1]) / 1024 / 1024).toFixed(1));
  await is.kill();

  // 5. A fresh server process on the same database (`big` associations): RSS after a few lookups.
  const fresh = await startIdentityServer(dbPath, smtp.url);
  for (let i = 0; i < 50; i++) {
    const r = await fetch(`${fresh.url}/_matrix/identity/v2/lookup`, { method: "POST", headers: auth, body: JSON.stringify({ algorithm: "sha256", pepper: PEPPER, addresses: [hashOf(i * 9973)] }) });
    await r.arrayBuffer();
  }
  results[`fresh_server_rss_mb_at_${big}`] = Number(rssMb(fresh.pid).toFixed(1));
  // RssFile is the mapped node binary and shared libraries (~35 MB for a bare `node`); RssAnon
  // holds the V8 heap, native allocations and SQLite's page caches (2 connections × ≤ 2 MB).
  results[`fresh_server_rss_anon_mb_at_${big}`] = Number(rssMb(fresh.pid, "RssAnon").toFixed(1));
  results[`fresh_server_rss_file_mb_at_${big}`] = Number(rssMb(fresh.pid, "RssFile").toFixed(1));
  await fresh.kill();
} finally {
  await smtp.close();
  dir.cleanup();
}

results.machine = `${os.cpus().length} vCPU ${os.cpus()[0]?.model ?? "?"}, Node ${process.version}`;
results.server_node_flags = (nodeFlags ?? serverProcessSettings("identity-server").nodeFlags).join(" ") || "(none)";
if (asJson) console.log(JSON.stringify(results, null, 2));
else for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(40)} ${v}`);
process.exit(0);
