/**
 * SQLite faults, with both servers in this process (so the test can reach their database
 * connection): "disk full" (DECISIONS.md: `PRAGMA max_page_count` on the server's own
 * connection, set to the pages in use) and "file locked" (another connection holds the write
 * lock: for 1 s, which only delays a write, and past the kit's 5 s busy budget, which fails it;
 * either way the waiting is asynchronous and the event loop keeps serving).
 *
 * Expected behaviour (docs/RELIABILITY.md, "## Faults"):
 * - a write that cannot be stored answers a Matrix error (`{errcode, error}`, 5xx) with no
 *   internals (no SQLite text, stack or path); nothing half-written is visible afterwards;
 * - reads keep working meanwhile;
 * - once space is freed / the lock released, the same server takes writes again, no restart.
 *
 * The servers' configs have no `max_page_count` key (the kit's `openDatabase` takes
 * `sqliteMaxPageCount`, but neither server passes one through), hence the in-process setup.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { monitorEventLoopDelay } from "node:perf_hooks";
import Database from "better-sqlite3";
import { sql, type Kysely } from "kysely";
import { distinctFreePorts, startSmtpReceiver, tempDir, type SmtpReceiver } from "@beckon/test-support";
import { createHomeserver, homeserverConfigFor, type Homeserver } from "@beckon/homeserver";
import { createIdentityServer, loadIdentityServerConfig, type IdentityServer } from "@beckon/identity-server";
import { IdentityClient, MatrixClient, ensureIdentityToken } from "@beckon/client";
import { call, unique } from "./support.js";

/** A 5xx Matrix error that reveals nothing of the engine. */
function assertCleanError(r: { status: number; json: Record<string, unknown>; text: string }, what: string): void {
  assert.ok(r.status >= 500 && r.status < 600, `${what}: expected a 5xx, got ${r.status}: ${r.text}`);
  assert.equal(typeof r.json["errcode"], "string", `${what}: a Matrix error body: ${r.text}`);
  assert.equal(typeof r.json["error"], "string", `${what}: a Matrix error body: ${r.text}`);
  assert.doesNotMatch(r.text, /sqlite|SQLITE_|database or disk|locked|\bat .*\.js|\/work\/|node_modules/i, `${what}: internals in the answer: ${r.text}`);
}

async function pragma(db: Kysely<unknown>, text: string): Promise<number> {
  const r = await sql.raw<Record<string, number>>(`PRAGMA ${text}`).execute(db);
  const row = r.rows[0];
  return row ? Number(Object.values(row)[0]) : NaN;
}

describe("SQLite faults (servers in process)", { timeout: 180_000 }, () => {
  let dir: { path: string; cleanup(): void };
  let smtp: SmtpReceiver;
  let hs: Homeserver;
  let is: IdentityServer;
  let hsUrl: string;
  let isUrl: string;
  let alice: MatrixClient;
  let aliceIs: IdentityClient;
  let roomId: string;
  const hsDb = () => hs.storage.handle.db as unknown as Kysely<unknown>;
  const isDb = () => is.database.db as unknown as Kysely<unknown>;
  const send = (body: string) =>
    call("PUT", `${hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${unique("t")}`, alice.accessToken!, { msgtype: "m.text", body });
  const requestToken = () =>
    call("POST", `${isUrl}/_matrix/identity/v2/validate/email/requestToken`, aliceIs.accessToken!, { email: `${unique("f")}@example.org`, client_secret: unique("s"), send_attempt: 1 });

  before(async () => {
    dir = tempDir("beckon-sqlite-faults-");
    smtp = await startSmtpReceiver();
    const [hsPort, isPort] = (await distinctFreePorts(2)) as [number, number];
    hsUrl = `http://127.0.0.1:${hsPort}`;
    isUrl = `http://127.0.0.1:${isPort}`;
    hs = await createHomeserver({
      config: homeserverConfigFor({
        server_name: `localhost:${hsPort}`,
        database_url: `sqlite:${dir.path}/hs.db`,
        listen: `127.0.0.1:${hsPort}`,
        log_level: "silent",
        passwords: { scrypt_n: 1024 },
        rate_limits: { enabled: false },
        identity_servers: { map: { [`localhost:${isPort}`]: isUrl } },
        outbound: { allow_private: true },
      }),
    });
    await hs.start({ host: "127.0.0.1", port: hsPort });
    is = await createIdentityServer({
      config: loadIdentityServerConfig({
        env: {},
        overrides: {
          server_name: `localhost:${isPort}`,
          public_base_url: isUrl,
          database_url: `sqlite:${dir.path}/is.db`,
          smtp_url: smtp.url,
          log_level: "silent",
          rate_limits: { enabled: false },
          homeservers: { [`localhost:${hsPort}`]: hsUrl },
          outbound: { allow_private: true },
        },
      }),
    });
    await is.start({ host: "127.0.0.1", port: isPort });
    alice = new MatrixClient({ baseUrl: hsUrl });
    await alice.register({ username: unique("alice"), password: "correct horse battery" });
    aliceIs = new IdentityClient({ baseUrl: isUrl, transport: alice.transport });
    await ensureIdentityToken(alice, aliceIs);
    roomId = (await alice.createRoom({ name: "Full disk room" })).room_id;
  });
  after(async () => {
    await is?.stop().catch(() => {});
    await hs?.stop().catch(() => {});
    await smtp?.close();
    dir?.cleanup();
  });

  it("homeserver, disk full: writes answer a clean 5xx, reads work, writes work again once space is freed (no restart)", async () => {
    const pages = await pragma(hsDb(), "page_count");
    await pragma(hsDb(), `max_page_count = ${pages}`);
    let failed: Awaited<ReturnType<typeof send>> | undefined;
    let stored = 0;
    try {
      for (let i = 0; i < 200 && !failed; i++) {
        const r = await send(`filler ${i} ${"x".repeat(8000)}`);
        if (r.status === 200) stored++;
        else failed = r;
      }
      assert.ok(failed, "the database never filled up");
      console.log(`# HS disk full: ${stored} messages stored, then ${failed.status} ${failed.text}`);
      assertCleanError(failed, "message send on a full disk");
      const created = await call("POST", `${hsUrl}/_matrix/client/v3/createRoom`, alice.accessToken!, { name: "no room" });
      assertCleanError(created, "createRoom on a full disk");
      // Reads keep working.
      assert.equal((await call("GET", `${hsUrl}/_matrix/client/v3/account/whoami`, alice.accessToken!)).status, 200, "whoami");
      assert.equal((await call("GET", `${hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`, alice.accessToken!)).status, 200, "room state");
      const msgs = await call("GET", `${hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=5`, alice.accessToken!);
      assert.equal(msgs.status, 200, "messages");
      assert.equal((await call("GET", `${hsUrl}/_matrix/client/v3/joined_rooms`, alice.accessToken!)).status, 200, "joined_rooms");
    } finally {
      await pragma(hsDb(), "max_page_count = 1073741823");
    }
    // Space freed: the same process takes writes again, and the failed one left nothing behind.
    const ok = await send("after the disk was freed");
    assert.equal(ok.status, 200, ok.text);
    const again = await call("POST", `${hsUrl}/_matrix/client/v3/createRoom`, alice.accessToken!, { name: "after" });
    assert.equal(again.status, 200, again.text);
    const state = await call("GET", `${hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=${stored + 10}`, alice.accessToken!);
    const bodies = ((state.json["chunk"] as { type: string; content: { body?: string } }[]) ?? []).filter((e) => e.type === "m.room.message").map((e) => e.content.body ?? "");
    assert.equal(bodies.length, stored + 1, "every acknowledged message and nothing else");
  });

  it("identity server, disk full: writes answer a clean 5xx, reads work, writes work again once space is freed (no restart)", async () => {
    const pages = await pragma(isDb(), "page_count");
    await pragma(isDb(), `max_page_count = ${pages}`);
    let failed: Awaited<ReturnType<typeof requestToken>> | undefined;
    let stored = 0;
    try {
      for (let i = 0; i < 500 && !failed; i++) {
        const r = await requestToken();
        if (r.status === 200) stored++;
        else failed = r;
      }
      assert.ok(failed, "the database never filled up");
      console.log(`# IS disk full: ${stored} requestTokens stored, then ${failed.status} ${failed.text}`);
      assertCleanError(failed, "requestToken on a full disk");
      // Reads keep working.
      assert.equal((await call("GET", `${isUrl}/_matrix/identity/v2/pubkey/ed25519:0`)).status, 200, "pubkey");
      assert.equal((await call("GET", `${isUrl}/_matrix/identity/v2/account`, aliceIs.accessToken!)).status, 200, "account");
      assert.equal((await call("GET", `${isUrl}/_matrix/identity/v2/hash_details`, aliceIs.accessToken!)).status, 200, "hash_details");
      const lookup = await call("POST", `${isUrl}/_matrix/identity/v2/lookup`, aliceIs.accessToken!, { algorithm: "none", pepper: (await call("GET", `${isUrl}/_matrix/identity/v2/hash_details`, aliceIs.accessToken!)).json["lookup_pepper"], addresses: ["nobody@example.org email"] });
      assert.equal(lookup.status, 200, `lookup: ${lookup.text}`);
    } finally {
      await pragma(isDb(), "max_page_count = 1073741823");
    }
    const ok = await requestToken();
    assert.equal(ok.status, 200, ok.text);
  });

  it("homeserver, file locked longer than busy_timeout: a clean 5xx; works at once after the lock is released", async () => {
    const other = new Database(`${dir.path}/hs.db`);
    let answer: Awaited<ReturnType<typeof send>> | undefined;
    let ms = 0;
    try {
      other.prepare("BEGIN EXCLUSIVE").run();
      const t0 = Date.now();
      answer = await send("while locked");
      ms = Date.now() - t0;
      console.log(`# HS file locked: ${answer.status} after ${ms} ms: ${answer.text}`);
      // Reads are not blocked by a writer in WAL mode.
      assert.equal((await call("GET", `${hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`, alice.accessToken!)).status, 200, "room state while locked");
    } finally {
      other.prepare("ROLLBACK").run();
      other.close();
    }
    assertCleanError(answer, "send while the file is locked");
    const ok = await send("after the lock");
    assert.equal(ok.status, 200, ok.text);
  });

  it("identity server, file locked longer than busy_timeout: a clean 5xx; works at once after the lock is released", async () => {
    const other = new Database(`${dir.path}/is.db`);
    let answer: Awaited<ReturnType<typeof requestToken>> | undefined;
    try {
      other.prepare("BEGIN EXCLUSIVE").run();
      const t0 = Date.now();
      // The servers run in this process: a synchronous wait in either stalls this event loop too.
      const loop = monitorEventLoopDelay({ resolution: 10 });
      loop.enable();
      answer = await requestToken();
      // Keep the lock a while longer (past busy_timeout): the background workers write too.
      await new Promise((r) => setTimeout(r, 6000));
      loop.disable();
      console.log(`# IS file locked: ${answer.status} after ${Date.now() - t0} ms: ${answer.text}`);
      assert.equal((await call("GET", `${isUrl}/_matrix/identity/v2/pubkey/ed25519:0`)).status, 200, "pubkey while locked");
      readWhileLockedMs = Math.round(loop.max / 1e6);
      console.log(`# IS file locked: the event loop stalled for up to ${readWhileLockedMs} ms meanwhile`);
    } finally {
      other.prepare("ROLLBACK").run();
      other.close();
    }
    assertCleanError(answer, "requestToken while the file is locked");
    const t2 = Date.now();
    const ok = await requestToken();
    assert.equal(ok.status, 200, ok.text);
    console.log(`# IS after the lock: ${ok.status} in ${Date.now() - t2} ms`);
  });

  let readWhileLockedMs = -1;
  it("identity server, file locked: the event loop never stalls for 1 s (other requests keep being served)", () => {
    assert.ok(readWhileLockedMs >= 0, "measured by the test before");
    assert.ok(readWhileLockedMs < 1000, `the event loop stalled for ${readWhileLockedMs} ms while another connection held the write lock`);
  });

  for (const server of ["homeserver", "identity server"] as const) {
    it(`${server}, file locked for 1 s (less than busy_timeout, 5 s): the write waits and succeeds`, async () => {
      const other = new Database(`${dir.path}/${server === "homeserver" ? "hs" : "is"}.db`);
      other.prepare("BEGIN EXCLUSIVE").run();
      const release = setTimeout(() => {
        other.prepare("ROLLBACK").run();
        other.close();
      }, 1000);
      try {
        const t0 = Date.now();
        const r = server === "homeserver" ? await send("short lock") : await requestToken();
        console.log(`# ${server}, 1 s lock: ${r.status} after ${Date.now() - t0} ms: ${r.text.slice(0, 100)}`);
        assert.equal(r.status, 200, `a lock shorter than busy_timeout should only delay the write: ${r.text}`);
      } finally {
        await new Promise((r) => setTimeout(r, 1100));
        clearTimeout(release);
        if (other.open) {
          other.prepare("ROLLBACK").run();
          other.close();
        }
      }
    });
  }
});
