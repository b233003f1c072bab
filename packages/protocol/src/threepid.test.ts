import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { sha256 } from "./sha256.js";
import { isMedium, lookupHash, lookupHashInput, normalizeEmail, normalizeMsisdn, normalizeThreepid, redactEmailAddress } from "./threepid.js";
import { utf8Encode } from "./utf8.js";

test("lookup hash: the value Synapse produced", () => {
  assert.equal(lookupHash("carol@example.org", "email", "matrixrocks"), "8tKbIM8ECZCrzWaEDwSJrS5_l9pNMEEMYFGYNe1qx5M");
  assert.equal(lookupHashInput("carol@example.org", "email", "matrixrocks"), "carol@example.org email matrixrocks");
});

test("email normal form: NFKC, lower case, trimmed", () => {
  assert.equal(normalizeEmail("  Carol@Example.ORG "), "carol@example.org");
  assert.equal(normalizeEmail("ｃａｒｏｌ@ｅｘａｍｐｌｅ.org"), "carol@example.org"); // full-width forms
  assert.equal(normalizeEmail("STRAUSS@x.de"), "strauss@x.de");
  assert.equal(normalizeEmail("Ǆ@x"), "dž@x"); // NFKC decomposes the ligature first
  assert.equal(normalizeEmail("e\u0301@x"), "é@x"); // composed
  assert.equal(normalizeThreepid("email", "A@B"), "a@b");
  assert.equal(lookupHash(normalizeEmail("Carol@Example.org"), "email", "matrixrocks"), "8tKbIM8ECZCrzWaEDwSJrS5_l9pNMEEMYFGYNe1qx5M");
});

test("msisdn normal form: digits only", () => {
  assert.equal(normalizeMsisdn("+44 (7700) 900-123"), "447700900123");
  assert.equal(normalizeMsisdn("44.7700.900123"), "447700900123");
  assert.equal(normalizeThreepid("msisdn", "+1 555 0100"), "15550100");
  assert.ok(isMedium("email") && isMedium("msisdn"));
  assert.equal(isMedium("Email"), false);
});

test("display-name redaction follows Sydent", () => {
  assert.equal(redactEmailAddress("carol@example.org"), "car...@exa...");
  assert.equal(redactEmailAddress("alice@example.com"), "ali...@exa...");
  assert.equal(redactEmailAddress("foo@bar.org"), "f...@bar...");
  assert.equal(redactEmailAddress("bo@x.io"), "b...@x.i...");
  assert.equal(redactEmailAddress("a@b.c"), "...@b...");
  assert.equal(redactEmailAddress("1234567890@1234567890.com", { localpartChars: 6, domainChars: 8 }), "123456...@12345678...");
  assert.equal(redactEmailAddress("abcdefg@x.io", { localpartChars: 10 }), "abc...@x.i...");
  assert.equal(redactEmailAddress("a@b@c.d"), "...@b@c...");
  assert.equal(redactEmailAddress("no-at-sign"), "no-...");
  assert.equal(redactEmailAddress("😀😀😀😀@ex.org"), "😀😀😀...@ex....");
  // Never the full address.
  for (const a of ["x@y.z", "alice@example.org", "ab@cd"]) assert.notEqual(redactEmailAddress(a), a);
});

test("property: the pure-JS SHA-256 matches node:crypto", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      assert.deepEqual(sha256(b), new Uint8Array(createHash("sha256").update(b).digest()));
    }),
    { numRuns: 300 },
  );
  // Block boundaries: 55, 56, 63, 64, 65 bytes.
  for (const n of [0, 55, 56, 63, 64, 65, 119, 120, 1000]) {
    const b = utf8Encode("a".repeat(n));
    assert.deepEqual(sha256(b), new Uint8Array(createHash("sha256").update(b).digest()), String(n));
  }
});
