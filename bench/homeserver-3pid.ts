/**
 * `npm run bench -- homeserver-3pid [--invites=1000] [--warmup=3000] [--concurrency=16] [--pending=1000] [--json]`:
 * the homeserver's 3PID paths through our real identity server, both on 127.0.0.1 over real
 * sockets (SQLite files, rate limits off, a real SMTP receiver for the mails):
 *
 * 1. 3PID invites/s: `POST rooms/{id}/invite` `{id_server, id_access_token, medium, address}`
 *    for distinct unbound addresses into one room (hash_details + lookup + store-invite + the
 *    `m.room.third_party_invite` event each), `--concurrency` in flight, after `--warmup`
 *    invites into a warm-up room (not measured). Measured here: after 1000 warm-up invites all
 *    three processes still used 25–50 % more CPU per invite than after 3000 (the load
 *    generator, whose code is trivial, 0.30–0.37 ms against 0.20–0.22 ms): the JIT had not
 *    finished, so the default is 3000.
 * 2. onbind: `--pending` rooms each holding a third-party invite for one address; the invitee
 *    validates the address and binds it through the homeserver; the clock runs from the bind
 *    until every invite shows in the invitee's `/sync` (the identity server's outbox delivers
 *    onbind, the homeserver verifies each signature and key and sends the member invites).
 *
 * Each server runs as `beckon <server> --config <file>` in its own process with the node flags
 * `beckon up` gives it; this process holds the load (node:http keep-alive) and a minimal SMTP
 * receiver (test-support `startSmtpSink`, standing in for a mail relay on another machine). The
 * figures include each server's CPU per 3PID invite and this process's own (/proc).
 *
 * Targets (issue 4): 3PID invite ≥ 500/s; 1000 onbind invites visible in ≤ 2 s.
 * Figures go in bench/RESULTS.md under "## homeserver 3PID".
 */
import os from "node:os";
import { join } from "node:path";
import { freePort, parseReceivedMail, startSmtpSink, tempDir } from "@beckon/test-support";
import { percentile, json, must, pool, benchArgs, cpuMs, rssMb, startBeckonServer } from "./lib/index.js";

const args = benchArgs();
const invites = Number(args.get("invites") ?? "1000");
const concurrency = Number(args.get("concurrency") ?? "16");
const pending = Number(args.get("pending") ?? "1000");
const warmup = Number(args.get("warmup") ?? "3000");
const asJson = args.get("json") === "true";
if (!(invites >= 10 && invites <= 100_000)) throw new Error("--invites must be in [10, 100000]");
if (!(warmup >= 0 && warmup <= 100_000)) throw new Error("--warmup must be in [0, 100000]");
if (!(concurrency >= 1 && concurrency <= 256)) throw new Error("--concurrency must be in [1, 256]");
if (!(pending >= 1 && pending <= 10_000)) throw new Error("--pending must be in [1, 10000]");

const V3 = "/_matrix/client/v3";
const IS2 = "/_matrix/identity/v2";
const enc = encodeURIComponent;





async function main(): Promise<void> {
  const dir = tempDir("beckon-bench-3pid-");
  const smtp = await startSmtpSink();
  const q = await freePort();
  const p = await freePort();
  const hsBase = `http://127.0.0.1:${q}`;
  const isBase = `http://127.0.0.1:${p}`;
  const idServer = `localhost:${p}`;
  // Both servers run as operators run them (`beckon <server> --config`), each in its own
  // process with the node flags `beckon up` gives it; this process is the load and the SMTP
  // server (receiving without parsing: a real mail server's work is not ours to measure).
  const hs = await startBeckonServer(
    "homeserver",
    {
      server_name: `localhost:${q}`,
      listen: `127.0.0.1:${q}`,
      database_url: `sqlite:${join(dir.path, "hs.db")}`,
      log_level: "silent",
      passwords: { scrypt_n: 1024 },
      rate_limits: { enabled: false },
      identity_servers: { map: { [idServer]: isBase, [`127.0.0.1:${p}`]: isBase } },
    },
    { configFile: join(dir.path, "homeserver.yaml"), readyPath: "/_matrix/client/versions" },
  );
  const is = await startBeckonServer(
    "identity-server",
    {
      server_name: idServer,
      other_names: [`127.0.0.1:${p}`],
      public_base_url: isBase,
      listen: `127.0.0.1:${p}`,
      database_url: `sqlite:${join(dir.path, "is.db")}`,
      homeservers: { [`localhost:${q}`]: hsBase },
      smtp_url: smtp.url,
      email: { from: "Beckon Bench <bench@example.org>" },
      rate_limits: { enabled: false },
      log_level: "silent",
      delivery: { base_backoff: "50ms", max_backoff: "1s", batch_size: 1000 },
    },
    { configFile: join(dir.path, "identity-server.yaml"), readyPath: "/_matrix/identity/v2" },
  );

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
    const newRoom = async () =>
      (await must(json(`${hsBase}${V3}/createRoom`, { method: "POST", token: aliceToken, body: { preset: "private_chat", name: "Bench" } }), "createRoom")).room_id as string;
    const invite = (roomId: string, address: string) =>
      must(
        json(`${hsBase}${V3}/rooms/${enc(roomId)}/invite`, { method: "POST", token: aliceToken, body: { id_server: idServer, id_access_token: aliceIs, medium: "email", address } }),
        "3PID invite",
      );
    // Warm-up, not measured: invites into another room, their mails delivered, so both servers'
    // invite paths are compiled and optimised (steady state, as for user-ID invites).
    const warmRoom = await newRoom();
    const mailsBeforeWarm = smtp.mails.length;
    await pool(warmup, concurrency, (i) => invite(warmRoom, `warm${i}@bench.example`));
    await smtp.waitForMails(mailsBeforeWarm + warmup, { timeoutMs: 120_000 });
    const room = await newRoom();
    const latencies: number[] = [];
    const hsCpu0 = cpuMs(hs.pid);
    const isCpu0 = cpuMs(is.pid);
    const benchCpu0 = cpuMs(process.pid);
    const t0 = performance.now();
    await pool(invites, concurrency, async (i) => {
      const s = performance.now();
      await invite(room, `user${i}@bench.example`);
      latencies.push(performance.now() - s);
    });
    const elapsed = (performance.now() - t0) / 1000;
    const hsCpuPerInvite = (cpuMs(hs.pid) - hsCpu0) / invites;
    const isCpuPerInvite = (cpuMs(is.pid) - isCpu0) / invites;
    const benchCpuPerInvite = (cpuMs(process.pid) - benchCpu0) / invites;
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
    const [rawMail] = await smtp.waitForMails(1, { match: (m) => m.to.includes(address) && m.raw.includes("Subject: Confirm"), timeoutMs: 30_000 });
    const mail = await parseReceivedMail(rawMail!);
    const token = decodeURIComponent(/submitToken\?[^\s"<>]*?token=([^&\s"<>]+)/.exec(mail.text)?.[1] ?? "");
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

    const result = {
      machine: `${os.cpus().length}× ${os.cpus()[0]?.model ?? "cpu"}, Node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(1)).join("/")}`,
      invites,
      warmup,
      concurrency,
      invitesPerSecond: Math.round(invitesPerSecond),
      inviteP50Ms: Number(percentile(latencies, 50).toFixed(1)),
      inviteP99Ms: Number(percentile(latencies, 99).toFixed(1)),
      pending,
      bindMs: Math.round(bindMs),
      onbindVisibleSeconds: Number(onbindSeconds.toFixed(2)),
      onbindVisible: seen.size,
      hsCpuMsPerInvite: Number(hsCpuPerInvite.toFixed(2)),
      isCpuMsPerInvite: Number(isCpuPerInvite.toFixed(2)),
      benchCpuMsPerInvite: Number(benchCpuPerInvite.toFixed(2)),
      hsRssMb: Math.round(rssMb(hs.pid)),
      isRssMb: Math.round(rssMb(is.pid)),
    };
    if (asJson) {
      console.log(JSON.stringify(result));
    } else {
      console.log(`machine: ${result.machine}`);
      console.log(`3PID invites: ${invites} at concurrency ${concurrency} after ${warmup} warm-up invites: ${result.invitesPerSecond}/s (p50 ${result.inviteP50Ms} ms, p99 ${result.inviteP99Ms} ms) — target ≥ 500/s`);
      console.log(
        `onbind: ${result.onbindVisible}/${pending} invites visible in /sync ${result.onbindVisibleSeconds} s after the bind (bind call ${result.bindMs} ms) — target ≤ 2 s for 1000`,
      );
      console.log(`server CPU per 3PID invite: homeserver ${result.hsCpuMsPerInvite} ms, identity server ${result.isCpuMsPerInvite} ms`);
      console.log(`load generator CPU per 3PID invite (client requests + SMTP receiver): ${result.benchCpuMsPerInvite} ms`);
      console.log(`RSS after the run: homeserver ${result.hsRssMb} MB, identity server ${result.isRssMb} MB`);
    }
  } finally {
    await is.stop();
    await hs.stop();
    await smtp.close();
    dir.cleanup();
  }
}

await main();
