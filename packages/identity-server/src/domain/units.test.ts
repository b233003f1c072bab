/** Pure pieces: Sydent's redaction, address grammar, msisdn normalisation, pepper rotation, the config. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupHash } from "@beckon/protocol";
import { ConfigError } from "@beckon/server-kit";
import { isValidEmail, normaliseMsisdn, redactEmail } from "./threepid.js";
import { hashAddress, rotatePepper } from "./lookup.js";
import { loadIdentityServerConfig } from "../config.js";
import { startTestServer } from "../testing/harness.js";

describe("redactEmail (Sydent)", () => {
  it("matches Sydent's examples", () => {
    assert.equal(redactEmail("1234567890@1234567890.com", 6, 8), "123456...@12345678...");
    assert.equal(redactEmail("1@1.com", 6, 8), "...@1...");
    assert.equal(redactEmail("alice@example.com"), "ali...@exa...");
    assert.equal(redactEmail("foo@bar.org"), "f...@bar...");
    assert.equal(redactEmail("bo@x.io"), "b...@x.i...");
    assert.equal(redactEmail("a@b.c"), "...@b...");
  });
});

describe("address grammar", () => {
  it("accepts plain addresses, refuses display-name forms and extra @s", () => {
    assert.equal(isValidEmail("bob@example.org"), true);
    assert.equal(isValidEmail("b.o+b@sub.example.co.uk"), true);
    assert.equal(isValidEmail("not@an@email@address"), false);
    assert.equal(isValidEmail("naughty nigel <perfectly.valid@mail.address>"), false);
    assert.equal(isValidEmail("x@"), false);
    assert.equal(isValidEmail("a@b\r\nBcc: c@d"), false);
    // What the mail outbox refuses is refused here too (fuzz DEF-5): controls, bidi, U+2028.
    for (const bad of ["a\u0000b@example.org", "a\u202eb@example.org", "a@exa\u2028mple.org", "a@exa\u0085mple.org"]) assert.equal(isValidEmail(bad), false, JSON.stringify(bad));
  });
  it("normalises msisdns", () => {
    assert.equal(normaliseMsisdn("GB", "07700 900123"), "447700900123");
    assert.equal(normaliseMsisdn("XX", "+1 (201) 555-0123"), "12015550123");
    assert.equal(normaliseMsisdn("XX", "12345"), undefined);
  });
});

describe("lookup hashing", () => {
  it("node:crypto hash equals the protocol's check value", () => {
    assert.equal(hashAddress("carol@example.org", "email", "matrixrocks"), "8tKbIM8ECZCrzWaEDwSJrS5_l9pNMEEMYFGYNe1qx5M");
    assert.equal(hashAddress("x@y.z", "email", "p"), lookupHash("x@y.z", "email", "p"));
  });
  it("pepper rotation rehashes every association", async () => {
    const t = await startTestServer();
    try {
      const now = t.clock.now();
      for (let i = 0; i < 30; i++) {
        await t.is.ctx.stores.associations.upsert(
          { medium: "email", address: `u${i}@r.example`, mxid: `@u${i}:hs`, ts: now, notBefore: now, notAfter: now + 1e9 },
          hashAddress(`u${i}@r.example`, "email", "matrixrocks"),
        );
      }
      const next = await rotatePepper(t.is.ctx, "newpepper");
      assert.equal(next, "newpepper");
      const old = await t.is.ctx.stores.associations.lookupHashes([hashAddress("u7@r.example", "email", "matrixrocks")], now);
      assert.equal(old.size, 0);
      const fresh = await t.is.ctx.stores.associations.lookupHashes([hashAddress("u7@r.example", "email", "newpepper")], now);
      assert.equal(fresh.get(hashAddress("u7@r.example", "email", "newpepper")), "@u7:hs");
    } finally {
      await t.close();
    }
  });
});

describe("config", () => {
  it("reports every problem at once and applies BECKON_IS_* overrides", () => {
    try {
      loadIdentityServerConfig({ env: { BECKON_IS_INVITES__LIFETIME: "soon", BECKON_IS_SMTP_URL: "http://x" } });
      assert.fail("should throw");
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.ok(e.problems.length >= 3, e.problems.join("; "));
    }
    const c = loadIdentityServerConfig({
      env: { BECKON_IS_SERVER_NAME: "is.example", BECKON_IS_PUBLIC_BASE_URL: "https://is.example/", BECKON_IS_RATE_LIMITS__ENABLED: "false", BECKON_IS_INVITES__DEDUPE_WINDOW: "5m" },
    });
    assert.equal(c.public_base_url, "https://is.example");
    assert.equal(c.rate_limits.enabled, false);
    assert.equal(c.invites.dedupe_window, 300_000);
    assert.equal(c.invites.lifetime, 30 * 86_400_000);
    assert.equal(c.validation.session_lifetime, 86_400_000);
    assert.deepEqual(c.terms, {});
  });
});
