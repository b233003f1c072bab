/**
 * The story of issue 6, through `beckon up` with real processes, on SQLite and PostgreSQL:
 * alice invites carol@example.org by email; (b) carol is not bound yet → a third-party invite,
 * a mail naming the room and alice, carol registers, validates by the mailed link, binds via
 * the homeserver, sees the invite in /sync and joins, alice sees the join; (a) now that carol
 * is bound, the next invite is a plain one.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { postgresSkipReason } from "@beckon/test-support";
import { inviteByEmail, waitForInvite, type IdentityClient, type MatrixClient } from "@beckon/client";
import { identityFor, registerUser, startStack, validateByMail, waitForMembership, type Engine, type Stack } from "./harness.js";

for (const engine of ["sqlite", "postgres"] as Engine[]) {
  const skip = engine === "postgres" ? postgresSkipReason() : undefined;
  describe(`e2e story through beckon up (${engine})`, { skip, timeout: 240_000 }, () => {
    let stack: Stack;
    let alice: MatrixClient;
    let aliceIdentity: IdentityClient;
    let carol: MatrixClient;
    let roomId: string;
    const email = "carol@example.org";

    before(async () => {
      stack = await startStack({ engine, mode: "up" });
      alice = await registerUser(stack, "alice");
      await alice.setDisplayName("Alice Liddell");
    });
    after(async () => {
      await stack?.close();
    });

    it("(b) carol is not bound: a third-party invite, and a mail with the room name and the inviter", async () => {
      roomId = (await alice.createRoom({ name: "Book club", preset: "private_chat" })).room_id;
      aliceIdentity = await identityFor(stack, alice);
      const outcome = await inviteByEmail(alice, roomId, email, { identity: aliceIdentity });
      assert.equal(outcome.status, "invited-by-3pid");
      const state = await alice.getState(roomId);
      const tpi = state.filter((e) => e.type === "m.room.third_party_invite");
      assert.equal(tpi.length, 1, "one m.room.third_party_invite in room state");
      const content = tpi[0]!.content as Record<string, unknown>;
      assert.equal(typeof content.display_name, "string");
      assert.doesNotMatch(String(content.display_name), /carol@example\.org/, "never the full address in room state");
      assert.ok(Array.isArray(content.public_keys) && content.public_keys.length >= 1);
      assert.match(String(content.key_validity_url), new RegExp(`^${stack.isUrl}/`));
      const [mail] = await stack.smtp.waitForMails(1, { timeoutMs: 15_000, match: (m) => m.to.includes(email) });
      const all = `${mail!.subject}\n${mail!.text}`;
      assert.match(all, /Book club/, "the mail names the room");
      assert.match(all, /Alice Liddell/, "the mail names the inviter");
      assert.ok(all.includes(alice.userId!), "the mail has the inviter's MXID");
      assert.match(mail!.text, /sign-ed25519\?token=/, "the mail has the sign URL");
    });

    it("(b) carol registers, validates by the mailed link, binds via the homeserver, sees the invite in /sync and joins; alice sees the join", async () => {
      carol = await registerUser(stack, "carol");
      const carolIdentity = await identityFor(stack, carol);
      const session = await validateByMail(stack, carolIdentity, email);
      await carol.bindThreepid({ sid: session.sid, clientSecret: session.clientSecret, idServer: carolIdentity.serverName, idAccessToken: carolIdentity.accessToken! });
      const invitedTo = await waitForInvite(carol, { roomId, timeoutMs: 30_000, pollMs: 5_000 });
      assert.equal(invitedTo, roomId);
      const member = await alice.getStateEvent(roomId, "m.room.member", carol.userId!);
      assert.equal(member["membership"], "invite");
      assert.ok(member["third_party_invite"], "the invite carries third_party_invite");
      await carol.join(roomId);
      await waitForMembership(alice, roomId, carol.userId!, "join");
      // Alice sees it in her own /sync too.
      const sync = await alice.syncOnce({ timeout: 0 });
      const joined = sync.rooms?.join ? Object.entries(sync.rooms.join).find(([id]) => id === roomId)?.[1] : undefined;
      const timeline = joined?.timeline?.events ?? [];
      const stateEvents = joined?.state?.events ?? [];
      const joins = [...timeline, ...stateEvents].filter(
        (e) => e.type === "m.room.member" && e.state_key === carol.userId && (e.content as { membership?: unknown }).membership === "join",
      );
      assert.ok(joins.length >= 1, "alice's /sync shows carol's join");
    });

    it("(a) carol is bound now: inviting the address again is a plain invite to her Matrix ID", async () => {
      const second = (await alice.createRoom({ name: "Second room" })).room_id;
      const mailsBefore = stack.smtp.mails.filter((m) => m.to.includes(email)).length;
      const outcome = await inviteByEmail(alice, second, email, { identity: aliceIdentity });
      assert.equal(outcome.status, "invited");
      assert.equal(outcome.userId, carol.userId);
      const state = await alice.getState(second);
      assert.equal(state.filter((e) => e.type === "m.room.third_party_invite").length, 0, "no third-party invite");
      await waitForInvite(carol, { roomId: second, timeoutMs: 20_000, pollMs: 5_000 });
      await carol.join(second);
      await waitForMembership(alice, second, carol.userId!, "join");
      assert.equal(stack.smtp.mails.filter((m) => m.to.includes(email) && /Second room/.test(m.text + m.subject)).length, 0, "no invite mail");
      assert.ok(stack.smtp.mails.filter((m) => m.to.includes(email)).length >= mailsBefore);
    });
  });
}
