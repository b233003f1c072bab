/**
 * PostgreSQL restarted under load: both servers (`beckon` CLI processes) run on a private
 * PostgreSQL 15 cluster this test starts (never the shared TEST_POSTGRES_URL server), with writes
 * and reads going on; the cluster is stopped (`pg_ctl -m immediate`, as a crash) and started
 * again on the same port.
 *
 * Expected: during the outage every request answers a clean Matrix error (a 5xx `{errcode,
 * error}` without internals) and neither process exits; afterwards both servers serve again
 * by themselves, without a restart, and every acknowledged write is there.
 *
 * Runs only when TEST_POSTGRES_URL is set (PostgreSQL tests are wanted), this process is root
 * (to run the cluster as `postgres` via runuser) and /usr/lib/postgresql/15/bin exists.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chownSync, existsSync } from "node:fs";
import { freePort, postgresSkipReason, tempDir, waitFor } from "@beckon/test-support";
import { call, newUser, startPair, unique, type Pair, type User } from "./support.js";

const PG_BIN = "/usr/lib/postgresql/15/bin";

function skipReason(): string | undefined {
  const pg = postgresSkipReason();
  if (pg) return pg;
  if (process.getuid?.() !== 0) return "not root: cannot run a private PostgreSQL cluster as the postgres user";
  if (!existsSync(`${PG_BIN}/pg_ctl`)) return `${PG_BIN}/pg_ctl is absent`;
  try {
    execFileSync("id", ["-u", "postgres"], { stdio: "ignore" });
  } catch {
    return "no postgres user";
  }
  return undefined;
}

const skip = skipReason();
if (skip) console.log(`# PostgreSQL restart test skipped: ${skip}`);

function asPostgres(args: string[]): string {
  return execFileSync("runuser", ["-u", "postgres", "--", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
}

const clean = (r: { status: number; json: Record<string, unknown>; text: string }) =>
  r.status >= 500 && r.status < 600 && typeof r.json["errcode"] === "string" && typeof r.json["error"] === "string" && !/postgres|ECONNREFUSED|terminat|\bat .*\.js|node_modules|\/tmp\//i.test(r.text);

describe("PostgreSQL restarted under load", { skip, timeout: 240_000 }, () => {
  let dir: { path: string; cleanup(): void };
  let port: number;
  let pair: Pair | undefined;
  let alice: User;
  let aliceIsToken: string;
  const pgCtl = (...a: string[]) => asPostgres([`${PG_BIN}/pg_ctl`, "-D", `${dir.path}/data`, ...a]);
  const startPg = () => pgCtl("-w", "-t", "60", "-l", `${dir.path}/pg.log`, "-o", `-p ${port} -k ${dir.path} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60`, "start");

  before(async () => {
    dir = tempDir("beckon-pg-restart-");
    chownSync(dir.path, Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim()), Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim()));
    port = await freePort();
    asPostgres([`${PG_BIN}/initdb`, "-D", `${dir.path}/data`, "-A", "trust", "-U", "postgres", "--no-sync"]);
    startPg();
    pair = await startPair({ engine: "postgres", databaseUrl: `postgres://postgres@127.0.0.1:${port}/postgres` });
    alice = await newUser(pair, "alice");
    aliceIsToken = alice.isToken;
  });
  after(async () => {
    await pair?.close();
    try {
      pgCtl("-m", "immediate", "stop");
    } catch {
      /* not running */
    }
    dir?.cleanup();
  });

  it("requests during the outage fail cleanly; both servers recover by themselves; acknowledged writes kept", async () => {
    const p = pair!;
    const roomId = (await alice.client.createRoom({ name: "PG restart" })).room_id;
    const acked: string[] = [];
    const during: { status: number; json: Record<string, unknown>; text: string }[] = [];
    let stop = false;
    let phase = "before" as "before" | "outage" | "after";
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const body = `m${i}`;
        const [hs, is] = await Promise.all([
          call("PUT", `${p.hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${unique("t")}`, alice.token, { msgtype: "m.text", body }, 15_000),
          call("POST", `${p.isUrl}/_matrix/identity/v2/validate/email/requestToken`, aliceIsToken, { email: `${unique("pg")}@example.org`, client_secret: unique("s"), send_attempt: 1 }, 15_000),
        ]);
        if (hs.status === 200) acked.push(body);
        if (phase === "outage") during.push(hs, is);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await waitFor(() => acked.length >= 5, { timeoutMs: 20_000, what: "some writes before the outage" });
    phase = "outage";
    pgCtl("-m", "immediate", "-w", "stop");
    const reads: number[] = [];
    await new Promise((r) => setTimeout(r, 2000));
    reads.push((await call("GET", `${p.hsUrl}/_matrix/client/versions`)).status, (await call("GET", `${p.isUrl}/_matrix/identity/v2`)).status);
    startPg();
    const t0 = Date.now();
    phase = "after";
    const ackedAtRestart = acked.length;
    await waitFor(() => acked.length >= ackedAtRestart + 5, { timeoutMs: 60_000, intervalMs: 100, what: "writes to succeed again after PostgreSQL is back" });
    const recoveryMs = Date.now() - t0;
    const isOk = await waitFor(
      async () => (await call("POST", `${p.isUrl}/_matrix/identity/v2/validate/email/requestToken`, aliceIsToken, { email: `${unique("pg")}@example.org`, client_secret: unique("s"), send_attempt: 1 })).status === 200,
      { timeoutMs: 60_000, intervalMs: 200, what: "the identity server to take writes again" },
    );
    stop = true;
    await load;
    const failed = during.filter((r) => r.status !== 200);
    const unclean = failed.filter((r) => !clean(r));
    console.log(
      `# PostgreSQL restart: ${during.length} requests during the outage, ${failed.length} failed (${[...new Set(failed.map((r) => `${r.status} ${String(r.json["errcode"] ?? r.text.slice(0, 40))}`))].join("; ")}), ` +
        `${unclean.length} unclean; static reads during the outage ${reads.join(",")}; writes back ${recoveryMs} ms after the start; ${acked.length} messages acknowledged`,
    );
    assert.ok(isOk);
    assert.ok(failed.length > 0, "some requests hit the outage");
    assert.deepEqual(unclean.map((r) => `${r.status} ${r.text}`), [], "every failure is a clean Matrix 5xx");
    assert.deepEqual(reads, [200, 200], "routes that need no database keep answering");
    // Every acknowledged message is in the room.
    const msgs = await call("GET", `${p.hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=1000`, alice.token);
    const bodies = new Set(((msgs.json["chunk"] as { type: string; content: { body?: string } }[]) ?? []).filter((e) => e.type === "m.room.message").map((e) => e.content.body));
    for (const b of acked) assert.ok(bodies.has(b), `acknowledged message ${b} lost`);
  });
});
