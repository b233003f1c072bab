/**
 * Identifier and address validation tables (issue 7, "Bad input"): mxids, room IDs, room
 * aliases and server names (IPv6 literals, ports) against the protocol functions; email
 * addresses (display-name forms, several `@`, lists, `\r\n` header injection) against the
 * identity server's requestToken and store-invite and the homeserver's 3PID invite — refused
 * with 400 `M_INVALID_EMAIL` and no mail — and injection attempts in names and subjects
 * neutralised in the mail that is sent.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { isValidRoomAlias, isValidRoomId, isValidServerName, isValidUserId, parseServerNameParts } from "@beckon/protocol";
import { startStack, IS_NAME, type Stack } from "./stack.js";
import { buildWorld, call, type World } from "./targets.js";

const long = (n: number) => "a".repeat(n);

describe("server names", () => {
  const rows: [string, boolean][] = [
    ["example.org", true],
    ["example.org:8448", true],
    ["localhost", true],
    ["localhost:8008", true],
    ["1.2.3.4", true],
    ["1.2.3.4:1", true],
    ["[::1]", true],
    ["[::1]:8448", true],
    ["[2001:db8::1]:443", true],
    ["[1234:5678:9abc:def0:1234:5678:9abc:def0]", true],
    ["[::ffff:1.2.3.4]", true],
    ["::1", false],
    ["[::1", false],
    ["::1]", false],
    ["[::1]x", false],
    ["[::1]:", false],
    ["[::1]:port", false],
    ["[gggg::1]", false],
    ["[1:2:3:4:5:6:7:8:9]", false],
    ["[::1::2]", false],
    ["example.org:", false],
    ["example.org:123456", false],
    ["example.org:80:80", false],
    ["example.org:-1", false],
    ["example.org: 80", false],
    ["exa mple.org", false],
    ["ex_ample.org", false],
    ["example.org\r\n", false],
    ["example.org\u0000", false],
    ["exämple.org", false],
    ["", false],
    [long(256), false],
  ];
  for (const [s, ok] of rows) {
    test(`${JSON.stringify(s.length > 40 ? `${s.slice(0, 20)}…(${s.length})` : s)} is ${ok ? "valid" : "refused"}`, () => {
      assert.equal(isValidServerName(s), ok);
      if (ok) assert.doesNotThrow(() => parseServerNameParts(s));
      else assert.throws(() => parseServerNameParts(s));
    });
  }
  test("ports and IPv6 hosts are split correctly", () => {
    assert.deepEqual(
      { host: parseServerNameParts("[::1]:8448").host, port: parseServerNameParts("[::1]:8448").port },
      { host: "[::1]", port: 8448 },
    );
    assert.equal(parseServerNameParts("example.org").port, undefined);
  });
});

describe("user IDs, room IDs, aliases", () => {
  const users: [string, boolean][] = [
    ["@alice:example.org", true],
    ["@alice:example.org:8448", true],
    ["@alice:[::1]:8448", true],
    ["@a.b_c=d-e/f+g:example.org", true],
    ["alice:example.org", false],
    ["@:example.org", false],
    ["@alice", false],
    ["@alice:", false],
    ["@alice@example.org", false],
    ["@a:b:c", false],
    ["@al ice:example.org", false],
    ["@alice\u0000:example.org", false],
    ["@alice:example.org\r\n", false],
    ["@alice\r\nX: y:example.org", false],
    ["@alicé:example.org", false],
    ["@alice:exa mple.org", false],
    ["@alice:[::1", false],
    [`@${long(250)}:example.org`, false],
  ];
  for (const [s, ok] of users) {
    test(`user ID ${JSON.stringify(s.slice(0, 40))} is ${ok ? "valid" : "refused"}`, () => assert.equal(isValidUserId(s), ok));
  }
  test("historical (upper-case) localparts are accepted, but not in strict mode", () => {
    assert.equal(isValidUserId("@ALICE:example.org"), true);
    assert.equal(isValidUserId("@ALICE:example.org", { strict: true }), false);
  });
  const rooms: [string, boolean][] = [
    ["!abc:example.org", true],
    ["!abc:[::1]:8448", true],
    ["abc:example.org", false],
    ["!:example.org", false],
    ["!a b:example.org", false],
    ["!abc:example.org\u0000", false],
    ["!abc:exa mple.org", false],
    ["!abc\r\n:example.org", false],
    ["#abc:example.org", false],
  ];
  for (const [s, ok] of rooms) test(`room ID ${JSON.stringify(s)} is ${ok ? "valid" : "refused"}`, () => assert.equal(isValidRoomId(s), ok));
  const aliases: [string, boolean][] = [
    ["#room:example.org", true],
    ["#room:[::1]:8448", true],
    ["room:example.org", false],
    ["#:example.org", false],
    ["#ro om:example.org", false],
    ["#room\u0000:example.org", false],
    ["#room:", false],
  ];
  for (const [s, ok] of aliases) test(`alias ${JSON.stringify(s)} is ${ok ? "valid" : "refused"}`, () => assert.equal(isValidRoomAlias(s), ok));
});

/** Addresses every entry point must refuse with 400 M_INVALID_EMAIL, sending nothing. */
const BAD_EMAILS: { address: string; defect?: string; errcodes?: string[] }[] = [
  { address: "alice" },
  { address: "@example.org" },
  { address: "alice@" },
  { address: "Alice <alice@example.org>" },
  { address: '"Alice" <alice@example.org>' },
  { address: "<alice@example.org>" },
  { address: "alice@example.org (Alice)" },
  { address: "a@b@example.org" },
  { address: "alice@example.org, bob@example.org" },
  { address: "alice@example.org;bob@example.org" },
  { address: "alice@example.org\r\nBcc: eve@example.org" },
  { address: "alice@example.org\nBcc: eve@example.org" },
  { address: "alice\r\n@example.org" },
  { address: "alice@exa\r\nmple.org" },
  { address: "alice@example..org" },
  { address: "alice@-example.org" },
  { address: `${long(600)}@example.org`, errcodes: ["M_INVALID_EMAIL", "M_INVALID_PARAM"] },
  { address: "a\u0000b@example.org" },
  { address: "a\u0007b@example.org" },
  { address: "alice@exam\u202eple.org" },
  { address: "alice\u2028@example.org" },
];

/**
 * RFC-doubtful but harmless addresses: each entry point either refuses them with
 * M_INVALID_EMAIL or mails exactly that one address (OBS-2 in RELIABILITY.md); never a 5xx.
 */
const DOUBTFUL_EMAILS = ["a..b@example.org", ".alice@example.org", "alice.@example.org", "alice@example", "alice@\u2603.org", "alice@127.0.0.1", "alice@[127.0.0.1]"];

describe("email addresses at the servers' endpoints", () => {
  let stack: Stack;
  let w: World;
  before(async () => {
    stack = await startStack({ logLevel: "error" });
    w = await buildWorld(stack);
  });
  after(async () => {
    await stack.close();
  });

  const settle = () => new Promise((r) => setTimeout(r, 150));

  for (const [i, row] of BAD_EMAILS.entries()) {
    const label = JSON.stringify(row.address.length > 40 ? `${row.address.slice(0, 20)}…` : row.address);
    test(`${label} is refused (M_INVALID_EMAIL, no mail) by requestToken, store-invite and the HS 3PID invite`, async (t) => {
      const mailsBefore = stack.mails.length;
      const answers = [
        await call(stack.is.app, "POST", "/_matrix/identity/v2/validate/email/requestToken", {
          token: w.aliceIsToken,
          body: { client_secret: `tableSecret${i}`, email: row.address, send_attempt: 1 },
        }),
        await call(stack.is.app, "POST", "/_matrix/identity/v2/store-invite", {
          token: w.aliceIsToken,
          body: { medium: "email", address: row.address, room_id: w.roomId, sender: w.alice.userId },
        }),
        await call(stack.hs.app, "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(w.roomId)}/invite`, {
          token: w.alice.token,
          body: { id_server: IS_NAME, id_access_token: w.aliceIsToken, medium: "email", address: row.address },
        }),
      ];
      await settle();
      const errcodes = row.errcodes ?? ["M_INVALID_EMAIL"];
      const problems = answers.flatMap((a, k) => (a.status === 400 && errcodes.includes(String(a.body.errcode)) ? [] : [`${["requestToken", "store-invite", "HS invite"][k]}: ${a.status} ${a.text.slice(0, 120)}`]));
      if (stack.mails.length !== mailsBefore) problems.push(`${stack.mails.length - mailsBefore} mail(s) sent`);
      if (problems.length > 0 && row.defect) {
        t.todo(`${row.defect}: ${problems.join("; ")}`);
        return;
      }
      assert.deepEqual(problems, []);
    });
  }

  for (const [i, address] of DOUBTFUL_EMAILS.entries()) {
    test(`${JSON.stringify(address)} is refused or mailed to exactly that address, never a 5xx`, async () => {
      const before = stack.mails.length;
      const rt = await call(stack.is.app, "POST", "/_matrix/identity/v2/validate/email/requestToken", {
        token: w.aliceIsToken,
        body: { client_secret: `doubtSecret${i}`, email: address, send_attempt: 1 },
      });
      const si = await call(stack.is.app, "POST", "/_matrix/identity/v2/store-invite", {
        token: w.aliceIsToken,
        body: { medium: "email", address, room_id: w.roomId, sender: w.alice.userId },
      });
      const accepted = [rt, si].filter((a) => a.status === 200).length;
      for (const a of [rt, si]) assert.ok(a.status === 200 || (a.status === 400 && a.body.errcode === "M_INVALID_EMAIL"), `${a.status} ${a.text.slice(0, 160)}`);
      const deadline = Date.now() + 3000;
      while (stack.mails.length < before + accepted && Date.now() < deadline) await settle();
      await settle();
      const sent = stack.mails.slice(before);
      assert.equal(sent.length, accepted);
      for (const m of sent) assert.equal(m.to, address.normalize("NFKC").toLowerCase());
    });
  }

  test("good addresses (case, +tag, IDN) get exactly one mail each, to that address", async () => {
    for (const [i, address] of ["Carol@Example.ORG", "carol+tag@example.org", "josé@exämple.org"].entries()) {
      const before = stack.mails.length;
      const r = await call(stack.is.app, "POST", "/_matrix/identity/v2/store-invite", {
        token: w.aliceIsToken,
        body: { medium: "email", address, room_id: w.roomId, sender: w.alice.userId, room_name: `Good ${i}` },
      });
      assert.equal(r.status, 200, r.text);
      const deadline = Date.now() + 3000;
      while (stack.mails.length === before && Date.now() < deadline) await settle();
      assert.equal(stack.mails.length, before + 1);
      assert.equal(stack.mails.at(-1)?.to.toLowerCase().includes(address.toLowerCase().normalize("NFKC")), true);
    }
  });

  test("CR/LF and markup in room names, display names and avatar URLs are neutralised in the invite mail", async () => {
    const address = "frank@example.org";
    const before = stack.mails.length;
    const r = await call(stack.is.app, "POST", "/_matrix/identity/v2/store-invite", {
      token: w.aliceIsToken,
      body: {
        medium: "email",
        address,
        room_id: w.roomId,
        sender: w.alice.userId,
        room_name: "Room\r\nBcc: eve@example.org\r\nSubject: pwned <script>alert(1)</script>",
        sender_display_name: "Eve\r\nX-Injected: 1 <img src=x onerror=alert(1)>",
        room_avatar_url: "mxc://x/y\r\nX-Avatar: 1",
      },
    });
    assert.equal(r.status, 200, r.text);
    const deadline = Date.now() + 3000;
    while (stack.mails.length === before && Date.now() < deadline) await settle();
    const m = stack.mails.at(-1);
    assert.ok(m && stack.mails.length === before + 1, "one mail");
    assert.equal(m.to, address);
    assert.doesNotMatch(m.subject, /[\r\n]/, "no line break in the subject");
    for (const [k, v] of Object.entries(m.headers ?? {})) {
      assert.doesNotMatch(k, /[\r\n]/);
      assert.doesNotMatch(v, /[\r\n]/, `header ${k}`);
      assert.notEqual(k.toLowerCase(), "bcc");
      assert.notEqual(k.toLowerCase(), "x-injected");
    }
    if (m.html !== undefined) {
      assert.doesNotMatch(m.html, /<script>alert|<img src=x/i, "markup is escaped in the HTML part");
    }
  });
});
