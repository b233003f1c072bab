/** Mail through the durable outbox to a real SMTP server on 127.0.0.1 (test-support's receiver). */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { systemClock } from "@beckon/server-kit";
import { startSmtpReceiver, type SmtpReceiver } from "@beckon/test-support";
import { startFakeHomeserver, type FakeHomeserver } from "./testing/fake-homeserver.js";
import { startTestServer, type TestServer } from "./testing/harness.js";

const V2 = "/_matrix/identity/v2";

describe("identity-server mail (real outbox, real SMTP)", () => {
  let hs: FakeHomeserver;
  let smtp: SmtpReceiver;
  let t: TestServer;
  let alice: string;

  const post = (url: string, body: unknown) =>
    t.is.app.inject({ method: "POST", url, headers: { authorization: `Bearer ${alice}` }, payload: JSON.stringify(body) });

  before(async () => {
    hs = await startFakeHomeserver();
    smtp = await startSmtpReceiver();
    t = await startTestServer({ hs, clock: systemClock, realMail: true, overrides: { smtp_url: smtp.url, email: { from: "Beckon <id@is.test>" } } });
    t.is.startWorkers();
    alice = await t.register(`@alice:${hs.serverName}`);
  });
  after(async () => {
    await t.close();
    await smtp.close();
    await hs.close();
  });

  it("store-invite: the mail leaves within a second, with room, inviter (name and MXID) and our sign URL", async () => {
    const started = Date.now();
    const r = await post(`${V2}/store-invite`, {
      medium: "email",
      address: "Invitee@Example.org",
      room_id: "!room:hs.example",
      sender: `@alice:${hs.serverName}`,
      room_name: "Book <club>",
      sender_display_name: "Alice",
      room_alias: "#books:hs.example",
    });
    assert.equal(r.statusCode, 200, r.body);
    const [mail] = await smtp.waitForMails(1, { timeoutMs: 5000 });
    assert.ok(Date.now() - started < 1000, "mail left within a second");
    assert.deepEqual(mail!.to, ["invitee@example.org"]);
    assert.match(mail!.subject, /Alice/);
    assert.match(mail!.text, /Book <club>/);
    assert.match(mail!.text, new RegExp(`@alice:${hs.serverName.replace(/[.:]/g, "\\$&")}`));
    const token = (r.json() as { token: string }).token;
    assert.match(mail!.text, new RegExp(`http://127\\.0\\.0\\.1:8090/_matrix/identity/v2/sign-ed25519\\?token=${token}&private_key=`));
    if (mail!.html) assert.doesNotMatch(mail!.html, /Book <club>/, "HTML-escaped in the HTML part");
    // A duplicate within the window sends nothing.
    assert.equal((await post(`${V2}/store-invite`, { medium: "email", address: "invitee@example.org", room_id: "!room:hs.example", sender: `@alice:${hs.serverName}` })).statusCode, 200);
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(smtp.mails.filter((m) => m.to.includes("invitee@example.org")).length, 1);
  });

  it("validation mail carries the submitToken link; M_THREEPID_IN_USE and invalid addresses send none", async () => {
    const before = smtp.mails.length;
    const r = await post(`${V2}/validate/email/requestToken`, { client_secret: "mailsecret", email: "check@example.org", send_attempt: 1 });
    assert.equal(r.statusCode, 200);
    const mails = await smtp.waitForMails(before + 1, { timeoutMs: 5000 });
    const m = mails.at(-1)!;
    const sid = (r.json() as { sid: string }).sid;
    assert.match(m.text, new RegExp(`/_matrix/identity/v2/validate/email/submitToken\\?token=\\w+&client_secret=mailsecret&sid=${sid}`));
    const bad = await post(`${V2}/validate/email/requestToken`, { client_secret: "x", email: "bad@@example.org", send_attempt: 1 });
    assert.equal(bad.statusCode, 400);
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(smtp.mails.length, before + 1);
  });

  it("SMTP down: the request still succeeds and the mail is retried until it leaves", async () => {
    smtp.setRefusing(true);
    const before = smtp.mails.length;
    const r = await post(`${V2}/store-invite`, { medium: "email", address: "retry@example.org", room_id: "!r2:hs.example", sender: `@alice:${hs.serverName}` });
    assert.equal(r.statusCode, 200);
    await new Promise((res) => setTimeout(res, 400));
    assert.equal(smtp.mails.length, before);
    smtp.setRefusing(false);
    const mails = await smtp.waitForMails(before + 1, { timeoutMs: 15_000 });
    assert.deepEqual(mails.at(-1)!.to, ["retry@example.org"]);
  });
});
