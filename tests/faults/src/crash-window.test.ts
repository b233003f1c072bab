/**
 * A crash window the random kill trials can hit only rarely, reproduced exactly: the homeserver
 * dies after it claimed an onbind invite (`threepid_onbind_claims` row, state "pending",
 * committed on its own) and before the member event was written. The state such a SIGKILL
 * leaves is written into the stopped homeserver's SQLite file by hand; then the homeserver
 * restarts and the address is bound, so the identity server delivers the onbind.
 *
 * Expected: the invite arrives, exactly once. The fresh 'pending' claim makes the homeserver answer
 * the onbind with a retryable error until the claim is stale (30 s), then it takes the claim over
 * and sends the invite; it never answers "done" for an invite no room holds (the defect this test
 * found: an earlier version did, and the identity server marked the invite delivered).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { waitFor } from "@beckon/test-support";
import { bind, call, invite3pid, newUser, roomState, startPair, timeline, unique, validateByMail, type Pair, type User } from "./support.js";

describe("crash window: homeserver killed between the onbind claim and the member event (SQLite)", { timeout: 120_000 }, () => {
  let pair: Pair;
  let alice: User;
  before(async () => {
    pair = await startPair({ engine: "sqlite", identityServer: { delivery: { lease: "1s", base_backoff: "100ms", max_backoff: "500ms" } } });
    alice = await newUser(pair, "alice");
  });
  after(async () => {
    await pair?.close();
  });

  it("the invite is delivered after the restart (once the crashed claim is stale)", async () => {
    const roomId = (await alice.client.createRoom({ name: "Crash window" })).room_id;
    const email = `${unique("cw")}@example.org`;
    assert.equal((await invite3pid(pair, alice, roomId, email)).status, 200);
    const token = (await roomState(pair, alice, roomId)).find((e) => e.type === "m.room.third_party_invite")!.state_key!;
    const bob = await newUser(pair, "bob");
    const session = await validateByMail(pair, bob, email);
    // What a SIGKILL right after claimOnbindMany leaves behind.
    await pair.kill("homeserver");
    const db = new Database(`${pair.dataDir}/homeserver.db`);
    try {
      db.prepare("INSERT INTO threepid_onbind_claims (room_id, token, mxid, state, created_ts) VALUES (?, ?, ?, 'pending', ?)").run(roomId, token, bob.userId, Date.now());
    } finally {
      db.close();
    }
    await pair.start("homeserver");
    assert.equal((await bind(pair, bob, session)).status, 200);
    const delivered = () => pair.log("identity-server").includes("onbind delivered");
    await waitFor(
      async () => {
        const r = await call("GET", `${pair.hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(bob.userId)}`, alice.token);
        return r.status === 200 && r.json["membership"] === "invite";
      },
      { timeoutMs: 75_000, intervalMs: 250, what: `the onbind invite of ${bob.userId}` },
    ).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}; the identity server logged "onbind delivered": ${delivered()}`);
    });
    const invites = (await timeline(pair, alice, roomId)).filter((e) => e.type === "m.room.member" && e.state_key === bob.userId && e.content["membership"] === "invite");
    assert.equal(invites.length, 1);
  });
});
