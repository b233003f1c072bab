import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  IdentifierError,
  idServerName,
  isEd25519KeyId,
  isValidEventId,
  isValidRoomAlias,
  isValidRoomId,
  isValidServerName,
  isValidUserId,
  parseEventId,
  parseKeyId,
  parseRoomAlias,
  parseRoomId,
  parseServerName,
  parseServerNameParts,
  parseUserId,
  userIdLocalpart,
} from "./identifiers.js";

test("server names: DNS, IPv4, bracketed IPv6, ports 1–65535", () => {
  assert.deepEqual(parseServerNameParts("matrix.org"), { host: "matrix.org", kind: "dns" });
  assert.deepEqual(parseServerNameParts("matrix.org:8888"), { host: "matrix.org", kind: "dns", port: 8888 });
  assert.deepEqual(parseServerNameParts("localhost:8008"), { host: "localhost", kind: "dns", port: 8008 });
  assert.deepEqual(parseServerNameParts("1.2.3.4"), { host: "1.2.3.4", kind: "ipv4" });
  assert.deepEqual(parseServerNameParts("1.2.3.4:1234"), { host: "1.2.3.4", kind: "ipv4", port: 1234 });
  assert.deepEqual(parseServerNameParts("[1234:5678::abcd]"), { host: "[1234:5678::abcd]", kind: "ipv6" });
  assert.deepEqual(parseServerNameParts("[1234:5678::abcd]:5678"), { host: "[1234:5678::abcd]", kind: "ipv6", port: 5678 });
  assert.deepEqual(parseServerNameParts("[::1]:1"), { host: "[::1]", kind: "ipv6", port: 1 });
  assert.equal(parseServerNameParts("a.example:65535").port, 65535);
  for (const ok of ["[::]", "[::ffff:127.0.0.1]", "[1:2:3:4:5:6:7:8]", "[1:2:3:4:5:6:1.2.3.4]", "[FE80::1]", "xn--bcher-kva.example", "a-b.c", "256.1.1.1"]) {
    assert.ok(isValidServerName(ok), ok);
  }
  const bad = [
    "", ":8008", "example.org:", "example.org:0", "example.org:65536", "example.org:99999", "example.org:123456", "example.org:-1",
    "example.org:+1", "example.org:80a", "exa mple.org", "example_org", "ex/ample", "example.org.", ".example.org", "a..b",
    "[::1", "[::1]x", "[::1]:", "[::1]:0", "[::g]", "[1:2:3:4:5:6:7:8:9]", "[1::2::3]", "[:1:2:3:4:5:6:7]", "[1:2:3:4:5:6:7]",
    "[12345::]", "[::1.2.3.256]", "[fe80::1%eth0]", "::1", "1.2.3.4:80:80", "a".repeat(256), "é.example",
  ];
  for (const b of bad) assert.equal(isValidServerName(b), false, b);
  assert.throws(() => parseServerName("bad host"), IdentifierError);
});

test("user IDs: grammar, historical leniency, strict mode, length", () => {
  const u = parseUserId("@alice:example.org");
  assert.equal(userIdLocalpart(u), "alice");
  assert.equal(idServerName(u), "example.org");
  assert.equal(idServerName(parseUserId("@a:[::1]:8448")), "[::1]:8448");
  assert.equal(userIdLocalpart(parseUserId("@a.b_c=d-e/f+g:localhost:8008")), "a.b_c=d-e/f+g");
  // Historical localparts: printable ASCII except ':' are accepted unless strict.
  for (const h of ["@Alice:example.org", "@al!ce#$%&'()*:example.org", "@~x[]{}|^`:example.org", "@a@b:example.org"]) {
    assert.ok(isValidUserId(h), h);
    assert.equal(isValidUserId(h, { strict: true }), false, h);
  }
  const bad = ["alice:example.org", "@:example.org", "@alice", "@al ice:example.org", "@alicé:example.org", "@alice:exa mple.org",
    "@alice:example.org:0", "@alice:example.org:65536", "@alice:", "@\u0000:example.org", "@a\u007f:example.org", "#alice:example.org"];
  for (const b of bad) assert.equal(isValidUserId(b), false, b);
  assert.equal(isValidUserId(42), false);
  // 255 bytes including sigil and server name.
  const server = ":example.org";
  assert.ok(isValidUserId("@" + "a".repeat(255 - 1 - server.length) + server));
  assert.equal(isValidUserId("@" + "a".repeat(256 - 1 - server.length) + server), false);
});

test("room IDs, aliases and event IDs", () => {
  assert.equal(parseRoomId("!opaque:example.org"), "!opaque:example.org");
  assert.equal(idServerName(parseRoomId("!abc:1.2.3.4:5")), "1.2.3.4:5");
  for (const b of ["opaque:example.org", "!:example.org", "!abc", "!a b:example.org", "!abc:bad host"]) assert.equal(isValidRoomId(b), false, b);
  assert.equal(parseRoomAlias("#room:example.org"), "#room:example.org");
  assert.ok(isValidRoomAlias("#日本:example.org"));
  for (const b of ["room:example.org", "#:example.org", "#a b:example.org", "#a:b:c:d", "#room"]) assert.equal(isValidRoomAlias(b), false, b);
  // 255 bytes, not characters: 3 bytes per 日.
  const server = ":example.org";
  const n = Math.floor((255 - 1 - server.length) / 3);
  assert.ok(isValidRoomAlias("#" + "日".repeat(n) + server));
  assert.equal(isValidRoomAlias("#" + "日".repeat(n + 1) + server), false);
  // Room v4+ event IDs: '$' + 43 URL-safe base64 characters; the older form '$opaque:server'.
  assert.ok(isValidEventId("$" + "A".repeat(42) + "_"));
  assert.equal(parseEventId("$acR1l0raoZnm60CBwAVgqbZqoO-mYU81xysh1u7XcJk"), "$acR1l0raoZnm60CBwAVgqbZqoO-mYU81xysh1u7XcJk");
  // Room v3's standard-alphabet event IDs are out of scope (we support room versions 10 and 11).
  assert.equal(isValidEventId("$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk"), false);
  assert.ok(isValidEventId("$old:example.org"));
  for (const b of ["$", "$abc", "A".repeat(44), "$" + "A".repeat(42), "$" + "A".repeat(43) + "=", "$a b:c"]) assert.equal(isValidEventId(b), false, b);
});

const localpart = fc.stringMatching(/^[a-z0-9._=\-/+]{1,20}$/);
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const dns = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join("."));
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((t) => t.join("."));
const ipv6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => `[${g.map((x) => x.toString(16)).join(":")}]`);
const host = fc.oneof(dns, ipv4, ipv6);
const serverName = fc.tuple(host, fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined })).map(([h, p]) => (p === undefined ? h : `${h}:${p}`));

test("property: identifiers built from valid parts parse back to their parts", () => {
  fc.assert(
    fc.property(localpart, serverName, (l, s) => {
      const u = parseUserId(`@${l}:${s}`, { strict: true });
      assert.equal(userIdLocalpart(u), l);
      assert.equal(idServerName(u), s);
      assert.equal(idServerName(parseRoomId(`!${l}:${s}`)), s);
      assert.equal(idServerName(parseRoomAlias(`#${l}:${s}`)), s);
      const parts = parseServerNameParts(s);
      assert.equal(parts.port === undefined ? parts.host : `${parts.host}:${parts.port}`, s);
    }),
    { numRuns: 500 },
  );
});

test("property: validators never throw anything but IdentifierError", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (s) => {
      for (const f of [parseUserId, parseRoomId, parseRoomAlias, parseEventId, parseServerName]) {
        try {
          f(s);
        } catch (e) {
          assert.ok(e instanceof IdentifierError, String(e));
        }
      }
    }),
    { numRuns: 500 },
  );
});

test("signing key IDs", () => {
  assert.deepEqual(parseKeyId("ed25519:0"), { algorithm: "ed25519", version: "0" });
  assert.deepEqual(parseKeyId("ed25519:a_B9"), { algorithm: "ed25519", version: "a_B9" });
  for (const bad of ["ed25519", "ed25519:", ":0", "ed25519:a-b", "ed25519:a:b", "ed 25519:0"]) assert.throws(() => parseKeyId(bad), IdentifierError, bad);
  assert.ok(isEd25519KeyId("ed25519:auto"));
  assert.equal(isEd25519KeyId("curve25519:x"), false);
  assert.equal(isEd25519KeyId(1), false);
});
