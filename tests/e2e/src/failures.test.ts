/**
 * The story when a server is away, with `beckon homeserver` and `beckon identity-server` as
 * separate processes: the identity server down during an invite (a clear 502, no event); the
 * homeserver down during a bind (the invite arrives when it is back); SIGKILL of each server
 * mid-flow (nothing is lost after the restart).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { postgresSkipReason, waitFor } from "@beckon/test-support";
import { MatrixCallError, inviteByEmail, waitForInvite, type IdentityClient, type MatrixClient } from "@beckon/client";
import { identityFor, registerUser, startStack, validateByMail, waitForMembership, type Engine, type Stack } from "./harness.js";

async function thirdPartyInvites(client: MatrixClient, roomId: string): Promise<number> {
  return (await client.getState(roomId)).filter((e) => e.type === "m.room.third_party_invite").length;
}

for (const engine of ["sqlite", "postgres"] as Engine[]) {
  const skip = engine === "postgres" ? postgresSkipReason() : undefined;
  describe(`e2e with servers away (${engine})`, { skip, timeout: 300_000 }, () => {
    let stack: Stack;
    let alice: MatrixClient;
    let aliceIdentity: IdentityClient;

    before(async () => {
      stack = await startStack({ engine, mode: "separate" });
      alice = await registerUser(stack, "alice");
      aliceIdentity = await identityFor(stack, alice);
    });
    after(async () => {
      await stack?.close();
    });

    it("identity server down during the invite: 502 M_UNKNOWN, no event; works again once it is back", async () => {
      const roomId = (await alice.createRoom({ name: "Down room" })).room_id;
      await stack.stopServer("identity-server");
      try {
        await assert.rejects(
          alice.inviteBy3PID(roomId, { idServer: aliceIdentity.serverName, idAccessToken: aliceIdentity.accessToken!, medium: "email", address: "dave@example.org" }),
          (e: unknown) => {
            assert.ok(e instanceof MatrixCallError, `a Matrix error from the homeserver, got ${String(e)}`);
            assert.equal(e.status, 502);
            assert.equal(e.errcode, "M_UNKNOWN");
            return true;
          },
        );
        assert.equal(await thirdPartyInvites(alice, roomId), 0, "no m.room.third_party_invite");
      } finally {
        await stack.startServer("identity-server");
      }
      const outcome = await inviteByEmail(alice, roomId, "dave@example.org", { identity: aliceIdentity });
      assert.equal(outcome.status, "invited-by-3pid");
      assert.equal(await thirdPartyInvites(alice, roomId), 1);
    });

    it("homeserver down during the bind: the invite is delivered when it comes back", async () => {
      const roomId = (await alice.createRoom({ name: "Bind while away" })).room_id;
      const email = "erin@example.org";
      assert.equal((await inviteByEmail(alice, roomId, email, { identity: aliceIdentity })).status, "invited-by-3pid");
      const erin = await registerUser(stack, "erin");
      const erinIdentity = await identityFor(stack, erin);
      const session = await validateByMail(stack, erinIdentity, email);
      await stack.stopServer("homeserver");
      try {
        // With the homeserver away, erin binds directly at the identity server; onbind cannot be delivered yet.
        await erinIdentity.bind({ sid: session.sid, clientSecret: session.clientSecret, mxid: erin.userId! });
        await new Promise((r) => setTimeout(r, 1500));
      } finally {
        await stack.startServer("homeserver");
      }
      await waitForInvite(erin, { roomId, timeoutMs: 45_000, pollMs: 5_000 });
      await erin.join(roomId);
      await waitForMembership(alice, roomId, erin.userId!, "join");
    });

    it("SIGKILL of the identity server after the invite: the mail still goes out after the restart, and the invite works", async () => {
      const roomId = (await alice.createRoom({ name: "Killed IS room" })).room_id;
      const email = "frank@example.org";
      const retries = () => stack.serverLog("identity-server").split("mail not sent; will retry").length - 1;
      const before = retries();
      stack.smtp.setRefusing(true);
      try {
        assert.equal((await inviteByEmail(alice, roomId, email, { identity: aliceIdentity })).status, "invited-by-3pid");
        // Kill right after a refused attempt was logged (its claim released, the next one ≥ 0.5 s away),
        // not during an SMTP conversation: a row claimed at the moment of the kill waits for its lease (5 min).
        await waitFor(() => retries() > before, { timeoutMs: 15_000, intervalMs: 10, what: "a refused delivery attempt in the IS log" });
        await stack.stopServer("identity-server", "SIGKILL");
      } finally {
        stack.smtp.setRefusing(false);
      }
      assert.equal(stack.smtp.mails.filter((m) => m.to.includes(email)).length, 0, "no mail while the relay refused");
      await stack.startServer("identity-server");
      const [mail] = await stack.smtp.waitForMails(1, { timeoutMs: 60_000, match: (m) => m.to.includes(email) });
      assert.match(`${mail!.subject}\n${mail!.text}`, /Killed IS room/);
      const frank = await registerUser(stack, "frank");
      const frankIdentity = await identityFor(stack, frank);
      const session = await validateByMail(stack, frankIdentity, email);
      await frank.bindThreepid({ sid: session.sid, clientSecret: session.clientSecret, idServer: frankIdentity.serverName, idAccessToken: frankIdentity.accessToken! });
      await waitForInvite(frank, { roomId, timeoutMs: 30_000, pollMs: 5_000 });
      await frank.join(roomId);
      await waitForMembership(alice, roomId, frank.userId!, "join");
    });

    it("SIGKILL of the identity server while an onbind delivery is pending: delivered after both are back", async () => {
      const roomId = (await alice.createRoom({ name: "Pending delivery room" })).room_id;
      const email = "heidi@example.org";
      assert.equal((await inviteByEmail(alice, roomId, email, { identity: aliceIdentity })).status, "invited-by-3pid");
      const heidi = await registerUser(stack, "heidi");
      const heidiIdentity = await identityFor(stack, heidi);
      const session = await validateByMail(stack, heidiIdentity, email);
      await stack.stopServer("homeserver");
      try {
        await heidiIdentity.bind({ sid: session.sid, clientSecret: session.clientSecret, mxid: heidi.userId! });
        // The delivery has failed at least once and waits for its retry; the process dies with it queued.
        await new Promise((r) => setTimeout(r, 1000));
        await stack.stopServer("identity-server", "SIGKILL");
      } finally {
        await stack.startServer("homeserver");
        await stack.startServer("identity-server");
      }
      await waitForInvite(heidi, { roomId, timeoutMs: 90_000, pollMs: 5_000 });
      await heidi.join(roomId);
      await waitForMembership(alice, roomId, heidi.userId!, "join");
    });

    it("SIGKILL of the homeserver mid-flow: room, third-party invite and accounts survive; the bind after the restart delivers", async () => {
      const roomId = (await alice.createRoom({ name: "Killed HS room" })).room_id;
      const email = "grace@example.org";
      assert.equal((await inviteByEmail(alice, roomId, email, { identity: aliceIdentity })).status, "invited-by-3pid");
      const grace = await registerUser(stack, "grace");
      const graceIdentity = await identityFor(stack, grace);
      const session = await validateByMail(stack, graceIdentity, email);
      await stack.stopServer("homeserver", "SIGKILL");
      await stack.startServer("homeserver");
      assert.equal(await thirdPartyInvites(alice, roomId), 1, "the third-party invite survived");
      assert.equal((await grace.whoami()).user_id, grace.userId, "grace's access token survived");
      await grace.bindThreepid({ sid: session.sid, clientSecret: session.clientSecret, idServer: graceIdentity.serverName, idAccessToken: graceIdentity.accessToken! });
      await waitForInvite(grace, { roomId, timeoutMs: 30_000, pollMs: 5_000 });
      // SIGKILL again right after the invite arrived: the invite is still there after the restart.
      await stack.stopServer("homeserver", "SIGKILL");
      await stack.startServer("homeserver");
      await waitFor(async () => (await alice.getStateEvent(roomId, "m.room.member", grace.userId!))["membership"] === "invite", {
        timeoutMs: 10_000,
        what: "grace's invite after the restart",
      });
      await grace.join(roomId);
      await waitForMembership(alice, roomId, grace.userId!, "join");
    });
  });
}
