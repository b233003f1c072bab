/**
 * Randomised kill trials (issue 7, "Faults"): SIGKILL the identity server while store-invites,
 * binds and onbind deliveries are in flight, and the homeserver while 3PID invites, onbinds and
 * joins are in flight, at a random moment; restart it on the same data; then check through the
 * public APIs that
 * - every acknowledged write is there (a 200 bind → the association looks up; a 200 join → the
 *   member is joined; a 200 3PID invite → its m.room.third_party_invite is in the room);
 * - every pending invite of a bound address is delivered exactly once (one m.room.member invite
 *   carrying third_party_invite per token in the whole timeline);
 * - nothing is half-applied (every m.room.third_party_invite still waiting has its invite at
 *   the identity server: its ephemeral key is valid there; every delivered member invite names
 *   a token the room has an m.room.third_party_invite for).
 *
 * `npm test`: 5 trials per server on each engine, SQLite and PostgreSQL (PostgreSQL skips with a
 * reason unless TEST_POSTGRES_URL is set). `npm run soak` (BECKON_SOAK=1): 50 per server and engine.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { postgresSkipReason, waitFor } from "@beckon/test-support";
import { bind, call, invite3pid, newUser, randomInt, roomState, sleep, startPair, timeline, trials, unique, validateByMail, type Pair, type User, type Which } from "./support.js";

const TRIALS = trials(5, 50);
const IS_FAST = { delivery: { lease: "1s", base_backoff: "100ms", max_backoff: "500ms" } };

interface Binder {
  user: User;
  email: string;
  session: { sid: string; clientSecret: string };
}

/** Invites `n` fresh addresses by email (each acknowledged) and validates each for a fresh user. */
async function makeBinders(pair: Pair, alice: User, roomId: string, n: number): Promise<Binder[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const email = `${unique("b")}@example.org`;
      const r = await invite3pid(pair, alice, roomId, email);
      assert.equal(r.status, 200, `setup invite: ${r.text}`);
      const user = await newUser(pair, "binder");
      const session = await validateByMail(pair, user, email);
      return { user, email, session };
    }),
  );
}

/** The checks every trial ends with. Returns a one-line summary. */
async function checkRoom(pair: Pair, alice: User, roomId: string, expect: { binders: Binder[]; tpiMin: number; tpiMax: number }, lost: string[]): Promise<void> {
  // Every bound address's invite arrives (the identity server retries the onbind). One that
  // does not is recorded (with the homeserver's onbind claim for it, as evidence) and asserted
  // separately, so the other checks still run.
  const missing = new Set<string>();
  for (const b of expect.binders) {
    const arrived = await waitFor(
      async () => {
        const r = await call("GET", `${pair.hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(b.user.userId)}`, alice.token);
        return r.status === 200 && r.json["membership"] === "invite";
      },
      // 90 s: a kill between the homeserver's onbind claim and its member event delays that
      // invite until the claim is stale (30 s) and the identity server's next retry.
      { timeoutMs: 90_000, intervalMs: 100, what: `the onbind invite of ${b.user.userId}` },
    ).then(
      () => true,
      () => false,
    );
    if (!arrived) {
      missing.add(b.user.userId);
      lost.push(`${b.user.userId} in ${roomId}: HS onbind claims ${JSON.stringify(onbindClaims(pair, b.user.userId))}`);
    }
  }
  const state = await roomState(pair, alice, roomId);
  const tpis = state.filter((e) => e.type === "m.room.third_party_invite");
  const tokens = new Set(tpis.map((e) => e.state_key!));
  assert.ok(tpis.length >= expect.tpiMin && tpis.length <= expect.tpiMax, `m.room.third_party_invite count ${tpis.length} not in [${expect.tpiMin}, ${expect.tpiMax}]`);
  // Exactly once: one member invite with third_party_invite per token over the whole timeline.
  const events = await timeline(pair, alice, roomId);
  const perToken = new Map<string, number>();
  const perUser = new Map<string, number>();
  for (const e of events) {
    if (e.type !== "m.room.member" || e.content["membership"] !== "invite") continue;
    const tpi = e.content["third_party_invite"] as { signed?: { token?: string } } | undefined;
    const token = tpi?.signed?.token;
    if (token === undefined) continue;
    assert.ok(tokens.has(token), `member invite for ${e.state_key} names token ${token} with no m.room.third_party_invite`);
    perToken.set(token, (perToken.get(token) ?? 0) + 1);
    perUser.set(e.state_key!, (perUser.get(e.state_key!) ?? 0) + 1);
  }
  for (const [token, n] of perToken) assert.equal(n, 1, `token ${token} delivered ${n} times`);
  for (const b of expect.binders) assert.equal(perUser.get(b.user.userId) ?? 0, missing.has(b.user.userId) ? 0 : 1, `${b.user.userId} invited ${perUser.get(b.user.userId) ?? 0} times`);
  // Nothing half-applied: each third-party invite not used yet has its invite at the identity server.
  for (const e of tpis) {
    if (perToken.has(e.state_key!)) continue;
    const keys = (e.content["public_keys"] as { public_key: string; key_validity_url: string }[] | undefined) ?? [];
    const eph = keys.find((k) => k.key_validity_url.includes("ephemeral"));
    assert.ok(eph, `m.room.third_party_invite ${e.state_key} has no ephemeral key`);
    const r = await call("GET", `${eph.key_validity_url}?public_key=${encodeURIComponent(eph.public_key)}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json["valid"], true, `the identity server has no invite for token ${e.state_key}`);
  }
}

/** The homeserver's onbind claim rows for `mxid` (read-only, beside the running server; WAL). */
function onbindClaims(pair: Pair, mxid: string): unknown[] {
  if (pair.engine !== "sqlite") return ["(PostgreSQL: see threepid_onbind_claims in the test database)"];
  try {
    const db = new Database(`${pair.dataDir}/homeserver.db`, { readonly: true });
    try {
      return db.prepare("SELECT state, created_ts FROM threepid_onbind_claims WHERE mxid = ?").all(mxid);
    } finally {
      db.close();
    }
  } catch (e) {
    return [String(e)];
  }
}


function killer(pair: Pair, which: Which, windowMs: number): { delay: number; done: Promise<void> } {
  const delay = randomInt(windowMs);
  return { delay, done: sleep(delay).then(() => pair.kill(which)) };
}

const outcomes = (rs: { status: number }[]) => rs.map((r) => r.status).join(",");

for (const engine of ["sqlite", "postgres"] as const) {
  const title = engine === "sqlite" ? "SQLite" : "PostgreSQL";
  const skip = engine === "postgres" ? postgresSkipReason() : undefined;

  describe(`kill trials: identity server (${title}, ${TRIALS} trials)`, { timeout: 600_000, skip }, () => {
    let pair: Pair;
    let alice: User;
    const summary: string[] = [];
    const lost: string[] = [];
    before(async () => {
      pair = await startPair({ engine, identityServer: IS_FAST });
      alice = await newUser(pair, "alice");
    });
    after(async () => {
      console.log(`# kill trials, identity server (${title}): ${summary.length} trials\n${summary.map((s) => `#   ${s}`).join("\n")}`);
      await pair?.close();
    });

    it("SIGKILL during store-invites, binds and onbind deliveries: acknowledged writes kept, each invite delivered once, nothing half-applied", async () => {
      for (let t = 0; t < TRIALS; t++) {
        const roomId = (await alice.client.createRoom({ name: `IS kill ${t}` })).room_id;
        const binders = await makeBinders(pair, alice, roomId, 2);
        const fresh = Array.from({ length: 3 }, () => `${unique("n")}@example.org`);
        const k = killer(pair, "identity-server", 250);
        const [binds, invites] = await Promise.all([
          Promise.all(binders.map((b) => sleep(randomInt(100)).then(() => bind(pair, b.user, b.session)))),
          Promise.all(fresh.map((e) => sleep(randomInt(100)).then(() => invite3pid(pair, alice, roomId, e)))),
          k.done,
        ]);
        await pair.start("identity-server");
        for (const r of invites) assert.ok([200, 502, 504].includes(r.status), `3PID invite answered ${r.status}: ${r.text}`);
        for (const r of binds) assert.ok(r.status === 200 || r.status === 0, `bind answered ${r.status}: ${r.text}`);
        // Acknowledged binds are there; the others are made again now.
        for (const [i, b] of binders.entries()) {
          if (binds[i]!.status === 200) assert.equal(await b.user.identity.lookupOne("email", b.email), b.user.userId, "an acknowledged bind was lost");
          else assert.equal((await bind(pair, b.user, b.session)).status, 200);
        }
        const acked = invites.filter((r) => r.status === 200).length;
        // The homeserver was up: its answer is the truth, so the count is exact.
        await checkRoom(pair, alice, roomId, { binders, tpiMin: binders.length + acked, tpiMax: binders.length + acked }, lost);
        summary.push(`trial ${t + 1}: kill at ${k.delay} ms; binds ${outcomes(binds)}; invites ${outcomes(invites)}; ${lost.length ? `LOST so far ${lost.length}` : "OK"}`);
      }
      assert.deepEqual(lost, [], "every bound address's invite arrived");
    });
  });

  describe(`kill trials: homeserver (${title}, ${TRIALS} trials)`, { timeout: 600_000, skip }, () => {
    let pair: Pair;
    let alice: User;
    const summary: string[] = [];
    const lost: string[] = [];
    let ran = false;
    before(async () => {
      pair = await startPair({ engine, identityServer: IS_FAST });
      alice = await newUser(pair, "alice");
    });
    after(async () => {
      console.log(`# kill trials, homeserver (${title}): ${summary.length} trials\n${summary.map((s) => `#   ${s}`).join("\n")}`);
      await pair?.close();
    });

    it("SIGKILL during 3PID invites, onbinds and joins: acknowledged writes kept, each invite delivered once, nothing half-applied", async () => {
      for (let t = 0; t < TRIALS; t++) {
        const roomId = (await alice.client.createRoom({ name: `HS kill ${t}` })).room_id;
        const binders = await makeBinders(pair, alice, roomId, 2);
        const joiners = await Promise.all([newUser(pair, "joiner"), newUser(pair, "joiner")]);
        for (const j of joiners) await alice.client.invite(roomId, j.userId);
        const fresh = Array.from({ length: 3 }, () => `${unique("n")}@example.org`);
        const k = killer(pair, "homeserver", 250);
        const joinOf = (j: User) => call("POST", `${pair.hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/join`, j.token, {});
        const [binds, invites, joins] = await Promise.all([
          Promise.all(binders.map((b) => sleep(randomInt(100)).then(() => bind(pair, b.user, b.session)))),
          Promise.all(fresh.map((e) => sleep(randomInt(100)).then(() => invite3pid(pair, alice, roomId, e)))),
          Promise.all(joiners.map((j) => sleep(randomInt(100)).then(() => joinOf(j)))),
          k.done,
        ]);
        await pair.start("homeserver");
        for (const r of binds) assert.equal(r.status, 200, `bind (identity server up) answered ${r.status}: ${r.text}`);
        for (const r of [...invites, ...joins]) assert.ok(r.status === 200 || r.status === 0, `answered ${r.status}: ${r.text}`);
        for (const [i, j] of joiners.entries()) {
          if (joins[i]!.status === 200) {
            const m = await call("GET", `${pair.hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(j.userId)}`, alice.token);
            assert.equal(m.json["membership"], "join", `an acknowledged join was lost (${j.userId})`);
          } else {
            const again = await joinOf(j);
            assert.equal(again.status, 200, `join after the restart: ${again.text}`);
          }
        }
        const acked = invites.filter((r) => r.status === 200).length;
        // An invite cut by the kill may or may not have been written; an acknowledged one must be.
        const before = lost.length;
        await checkRoom(pair, alice, roomId, { binders, tpiMin: binders.length + acked, tpiMax: binders.length + fresh.length }, lost);
        summary.push(`trial ${t + 1}: kill at ${k.delay} ms; binds ${outcomes(binds)}; invites ${outcomes(invites)}; joins ${outcomes(joins)}; ${lost.length > before ? `LOST ${lost.slice(before).join("; ")}` : "OK"}`);
      }
      ran = true;
    });

    it("no bound address's invite is lost over the trials", () => {
      assert.ok(ran, "the trials ran");
      assert.deepEqual(lost, []);
    });
  });
}
