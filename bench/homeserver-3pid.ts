/**
 * `npm run bench -- homeserver-3pid [--invites=1000] [--concurrency=16] [--pending=1000] [--json]`:
 * the homeserver's 3PID paths through our real identity server, both on 127.0.0.1 over real
 * sockets (SQLite files, rate limits off, a real SMTP receiver for the mails):
 *
 * 1. 3PID invites/s: `POST rooms/{id}/invite` `{id_server, id_access_token, medium, address}`
 *    for distinct unbound addresses into one room (hash_details + lookup + store-invite + the
 *    `m.room.third_party_invite` event each), `--concurrency` in flight.
 * 2. onbind: `--pending` rooms each holding a third-party invite for one address; the invitee
 *    validates the address and binds it through the homeserver; the clock runs from the bind
 *    until every invite shows in the invitee's `/sync` (the identity server's outbox delivers
 *    onbind, the homeserver verifies each signature and key and sends the member invites).
 *
 * The identity server runs in a child process (as a separately deployed server would), the
 * homeserver and the SMTP receiver in this one.
 *
 * Targets (issue 4): 3PID invite ≥ 500/s; 1000 onbind invites visible in ≤ 2 s.
 * Figures go in bench/RESULTS.md under "## homeserver 3PID".
 */
import os from "node:os";
import { join } from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { createHomeserver, homeserverConfigFor } from "@beckon/homeserver";
import { freePort, startSmtpReceiver, tempDir } from "@beckon/test-support";
import { percentile, json, must, pool, benchArgs } from "./lib/index.js";

const args = benchArgs();
const invites = Number(args.get("invites") ?? "1000");
const concurrency = Number(args.get("concurrency") ?? "16");
const pending = Number(args.get("pending") ?? "1000");
const asJson = args.get("json") === "true";
if (!(invites >= 10 && invites <= 100_000)) throw new Error("--invites must be in [10, 100000]");
if (!(concurrency >= 1 && concurrency <= 256)) throw new Error("--concurrency must be in [1, 256]");
if (!(pending >= 1 && pending <= 10_000)) throw new Error("--pending must be in [1, 10000]");

const V3 = "/_matrix/client/v3";
const IS2 = "/_matrix/identity/v2";
const enc = encodeURIComponent;





/** Our identity server in a child process; resolves once it listens. */
async function startIdentityServerProcess(overrides: Record<string, unknown>, port: number): Promise<ChildProcess> {
  const script = `
    import { createIdentityServer, loadIdentityServerConfig } from "@beckon/identity-server";
    const is = await createIdentityServer({ config: loadIdentityServerConfig({ env: {}, overrides: JSON.parse(process.env.BENCH_IS_CONFIG) }) });
    await is.start({ host: "127.0.0.1", port: ${port} });
    process.stdout.write("ready\\n");
    process.on("SIGTERM", () => { is.stop().finally(() => process.exit(0)); });
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: new URL("../..", import.meta.url).pathname,
    env: { ...process.env, BENCH_IS_CONFIG: JSON.stringify(overrides) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("identity server did not start in 30 s")), 30_000);
    child.once("exit", (code) => reject(new Error(`identity server exited with ${code}`)));
    child.stdout!.on("data", (d: Buffer) => {
      if (d.toString().includes("ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  process.once("exit", () => child.kill("SIGKILL"));
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

async function main(): Promise<void> {
  const dir = tempDir("beckon-bench-3pid-");
  const smtp = await startSmtpReceiver();
  const q = await freePort();
  const p = await freePort();
  const hsBase = `http://127.0.0.1:${q}`;
  const isBase = `http://127.0.0.1:${p}`;
  const idServer = `localhost:${p}`;
  const hs = await createHomeserver({
    config: homeserverConfigFor({
      server_name: `localhost:${q}`,
      database_url: `sqlite:${join(dir.path, "hs.db")}`,
      log_level: "silent",
      passwords: { scrypt_n: 1024 },
      rate_limits: { enabled: false },
      identity_servers: { map: { [idServer]: isBase, [`127.0.0.1:${p}`]: isBase } },
    }),
  });
  await hs.start({ host: "127.0.0.1", port: q });
  const isConfig = {
    server_name: idServer,
    other_names: [`127.0.0.1:${p}`],
    public_base_url: isBase,
    database_url: `sqlite:${join(dir.path, "is.db")}`,
    homeservers: { [`localhost:${q}`]: hsBase },
    smtp_url: smtp.url,
    email: { from: "Beckon Bench <bench@example.org>" },
    rate_limits: { enabled: false },
    log_level: "silent",
    delivery: { base_backoff: "50ms", max_backoff: "1s", batch_size: 1000 },
  };
  const is = await startIdentityServerProcess(isConfig, p);

  try {
    const register = async (name: string) =>
      must(json(`${hsBase}${V3}/register`, { method: "POST", body: { username: name, password: "bench password", auth: { type: "m.login.dummy" } } }), `register ${name}`);
    const alice = await register("alice");
    const bob = await register("bob");
    const aliceToken = alice.access_token as string;
    const bobToken = bob.access_token as string;
    const isToken = async (userId: string, token: string) => {
      const oid = await must(json(`${hsBase}${V3}/user/${enc(userId)}/openid/request_token`, { method: "POST", token, body: {} }), "openid");
      return (await must(json(`${isBase}${IS2}/account/register`, { method: "POST", body: oid }), "IS register")).token as string;
    };
    const aliceIs = await isToken(alice.user_id as string, aliceToken);

    // ── 1. 3PID invites/s ──────────────────────────────────────────────────────────────
    const room = (await must(json(`${hsBase}${V3}/createRoom`, { method: "POST", token: aliceToken, body: { preset: "private_chat", name: "Bench" } }), "createRoom"))
      .room_id as string;
    const warm = Math.min(50, Math.floor(invites / 10));
    const invite = (address: string) =>
      must(
        json(`${hsBase}${V3}/rooms/${enc(room)}/invite`, { method: "POST", token: aliceToken, body: { id_server: idServer, id_access_token: aliceIs, medium: "email", address } }),
        "3PID invite",
      );
    await pool(warm, concurrency, (i) => invite(`warm${i}@bench.example`));
    const latencies: number[] = [];
    const t0 = performance.now();
    await pool(invites, concurrency, async (i) => {
      const s = performance.now();
      await invite(`user${i}@bench.example`);
      latencies.push(performance.now() - s);
    });
    const elapsed = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    const invitesPerSecond = invites / elapsed;

    // ── 2. onbind with N pending invites ───────────────────────────────────────────────
    const address = "invitee@bench.example";
    const rooms = await pool(pending, 8, async () =>
      (
        await must(
          json(`${hsBase}${V3}/createRoom`, {
            method: "POST",
            token: aliceToken,
            body: { preset: "private_chat", invite_3pid: [{ id_server: idServer, id_access_token: aliceIs, medium: "email", address }] },
          }),
          "createRoom with invite_3pid",
        )
      ).room_id as string,
    );
    const bobIs = await isToken(bob.user_id as string, bobToken);
    const secret = "benchsecret";
    const sid = (await must(json(`${isBase}${IS2}/validate/email/requestToken`, { method: "POST", token: bobIs, body: { client_secret: secret, email: address, send_attempt: 1 } }), "requestToken"))
      .sid as string;
    const [mail] = await smtp.waitForMails(1, { match: (m) => m.to.includes(address) && m.text.includes("submitToken"), timeoutMs: 30_000 });
    const token = decodeURIComponent(/submitToken\?[^\s"<>]*?token=([^&\s"<>]+)/.exec(mail!.text)?.[1] ?? "");
    await must(json(`${isBase}${IS2}/validate/email/submitToken`, { method: "POST", token: bobIs, body: { sid, client_secret: secret, token } }), "submitToken");
    let since = (await must(json(`${hsBase}${V3}/sync?timeout=0`, { token: bobToken }), "initial sync")).next_batch as string;
    const seen = new Set<string>();
    const b0 = performance.now();
    await must(json(`${hsBase}${V3}/account/3pid/bind`, { method: "POST", token: bobToken, body: { id_server: idServer, id_access_token: bobIs, sid, client_secret: secret } }), "bind");
    const bindMs = performance.now() - b0;
    const deadline = Date.now() + 120_000;
    while (seen.size < rooms.length && Date.now() < deadline) {
      const s = await must(json(`${hsBase}${V3}/sync?timeout=5000&since=${enc(since)}`, { token: bobToken }), "sync");
      since = s.next_batch as string;
      const inv = (s.rooms as { invite?: Record<string, unknown> } | undefined)?.invite ?? {};
      for (const id of Object.keys(inv)) seen.add(id);
    }
    const onbindSeconds = (performance.now() - b0) / 1000;

    const mem = process.memoryUsage();
    const result = {
      machine: `${os.cpus().length}× ${os.cpus()[0]?.model ?? "cpu"}, Node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(1)).join("/")}`,
      invites,
      concurrency,
      invitesPerSecond: Math.round(invitesPerSecond),
      inviteP50Ms: Number(percentile(latencies, 50).toFixed(1)),
      inviteP99Ms: Number(percentile(latencies, 99).toFixed(1)),
      pending,
      bindMs: Math.round(bindMs),
      onbindVisibleSeconds: Number(onbindSeconds.toFixed(2)),
      onbindVisible: seen.size,
      rssMiB: Math.round(mem.rss / 1048576),
    };
    if (asJson) {
      console.log(JSON.stringify(result));
    } else {
      console.log(`machine: ${result.machine}`);
      console.log(`3PID invites: ${invites} at concurrency ${concurrency}: ${result.invitesPerSecond}/s (p50 ${result.inviteP50Ms} ms, p99 ${result.inviteP99Ms} ms) — target ≥ 500/s`);
      console.log(
        `onbind: ${result.onbindVisible}/${pending} invites visible in /sync ${result.onbindVisibleSeconds} s after the bind (bind call ${result.bindMs} ms) — target ≤ 2 s for 1000`,
      );
      console.log(`RSS of the homeserver process (with the SMTP receiver): ${result.rssMiB} MiB`);
    }
  } finally {
    await stopChild(is);
    await hs.stop();
    await smtp.close();
    dir.cleanup();
  }
}

await main();
