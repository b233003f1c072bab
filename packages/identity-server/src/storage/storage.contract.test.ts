/** The storage contract: every store behaves the same on SQLite and PostgreSQL. */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { inTransaction, openDatabase, runMigrations, type DatabaseHandle } from "@beckon/server-kit";
import { createDatabase, engines, type TestDatabase } from "../testing/databases.js";
import { createStores, IS_MIGRATIONS_TABLE, storageMigrations, type IsDatabase, type Stores, type StoredInvite } from "./index.js";
import { mailMigrations } from "../mail/index.js";

function invite(token: string, over: Partial<StoredInvite> = {}): StoredInvite {
  return {
    token,
    medium: "email",
    address: "bob@example.org",
    roomId: "!room:hs",
    sender: "@alice:hs",
    ephemeralPublicKey: `pk_${token}`,
    createdTs: 1000,
    expiresTs: 10_000,
    deliveredTs: null,
    details: { room_name: "Room" },
    ...over,
  };
}

for (const engine of engines()) {
  describe(`identity-server storage contract (${engine.name})`, { skip: engine.skip }, () => {
    let tdb: TestDatabase;
    let handle: DatabaseHandle<IsDatabase>;
    let s: Stores;
    before(async () => {
      tdb = await createDatabase(engine.name);
      handle = await openDatabase<IsDatabase>({ url: tdb.url });
      const applied = await runMigrations(handle, [...storageMigrations, ...mailMigrations], IS_MIGRATIONS_TABLE);
      assert.ok(applied.length >= 1);
      // Idempotent: a second run applies nothing.
      assert.deepEqual(await runMigrations(handle, [...storageMigrations, ...mailMigrations], IS_MIGRATIONS_TABLE), []);
      s = createStores(handle.db, handle.engine);
    });
    after(async () => {
      await handle?.close();
      await tdb?.cleanup();
    });

    it("accounts: tokens, owner lookup, logout, terms accumulate, consent version", async () => {
      await s.accounts.addToken("@a:hs", "t1", 1);
      await s.accounts.addToken("@a:hs", "t2", 2);
      assert.deepEqual(await s.accounts.tokenOwner("t1"), { userId: "@a:hs", consentVersion: null });
      await s.accounts.setConsentVersion("@a:hs", "v1");
      await s.accounts.addToken("@a:hs", "t3", 3); // existing consent kept
      assert.equal((await s.accounts.tokenOwner("t3"))?.consentVersion, "v1");
      await s.accounts.deleteToken("t1");
      assert.equal(await s.accounts.tokenOwner("t1"), undefined);
      assert.deepEqual(await s.accounts.acceptTerms("@a:hs", ["u1"]), ["u1"]);
      assert.deepEqual((await s.accounts.acceptTerms("@a:hs", ["u2", "u1"])).sort(), ["u1", "u2"]);
    });

    it("settings and signing keys: first writer wins", async () => {
      assert.equal(await s.settings.setIfAbsent("pepper", "a"), "a");
      assert.equal(await s.settings.setIfAbsent("pepper", "b"), "a");
      await s.settings.set("pepper", "c");
      assert.equal(await s.settings.get("pepper"), "c");
      const k1 = await s.signingKeys.insertIfAbsent("ed25519:0", "seed1", 1);
      const k2 = await s.signingKeys.insertIfAbsent("ed25519:0", "seed2", 2);
      assert.equal(k1.seed, "seed1");
      assert.equal(k2.seed, "seed1");
    });

    it("associations: upsert, validity window, hashed and plain lookups, rehash, delete", async () => {
      await s.associations.upsert({ medium: "email", address: "x@y.z", mxid: "@x:hs", ts: 10, notBefore: 10, notAfter: 100 }, "H1");
      await s.associations.upsert({ medium: "email", address: "w@y.z", mxid: "@w:hs", ts: 10, notBefore: 10, notAfter: 100 }, "H2");
      const found = await s.associations.lookupHashes(["H1", "H2", "nope"], 50);
      assert.deepEqual([...found.entries()].sort(), [["H1", "@x:hs"], ["H2", "@w:hs"]]);
      assert.equal((await s.associations.lookupHashes(["H1"], 200)).size, 0, "expired associations are not found");
      const plain = await s.associations.lookupPlain([{ medium: "email", address: "x@y.z" }], 50);
      assert.equal(plain.get("x@y.z email"), "@x:hs");
      await s.associations.upsert({ medium: "email", address: "x@y.z", mxid: "@x2:hs", ts: 20, notBefore: 20, notAfter: 100 }, "H1b");
      assert.equal((await s.associations.get("email", "x@y.z", 50))?.mxid, "@x2:hs");
      assert.equal(await s.associations.rehashAll((a, m) => `${a}|${m}`, 1), 2);
      assert.equal((await s.associations.lookupHashes(["x@y.z|email"], 50)).get("x@y.z|email"), "@x2:hs");
      assert.equal(await s.associations.delete("email", "x@y.z", "@someone-else:hs"), false);
      assert.equal(await s.associations.delete("email", "x@y.z", "@x2:hs"), true);
      assert.equal(await s.associations.count(), 1);
      // Chunked IN lists: more hashes than one chunk.
      const many = Array.from({ length: 1200 }, (_, i) => `miss${i}`).concat(["w@y.z|email"]);
      assert.equal((await s.associations.lookupHashes(many, 50)).size, 1);
    });

    it("sessions: unique per (medium, address, client_secret), touch, validate, purge", async () => {
      const base = { medium: "email", address: "s@x.y", clientSecret: "cs", token: "tok", sendAttempt: 1, nextLink: null, validatedTs: null, createdTs: 5, mtime: 5 };
      assert.equal(await s.sessions.insert({ ...base, sid: "sid1" }), true);
      assert.equal(await s.sessions.insert({ ...base, sid: "sid2" }), false);
      await s.sessions.touch("sid1", 2, "https://n", 7);
      const got = await s.sessions.find("email", "s@x.y", "cs");
      assert.equal(got?.sendAttempt, 2);
      assert.equal(got?.nextLink, "https://n");
      await s.sessions.markValidated("sid1", 9);
      assert.equal((await s.sessions.get("sid1"))?.validatedTs, 9);
      assert.equal(await s.sessions.purgeOlderThan(9), 0);
      assert.equal(await s.sessions.purgeOlderThan(10), 1);
    });

    it("invites: duplicate window, pending, ephemeral keys, delivered, purge", async () => {
      await s.invites.insert(invite("T1"));
      await s.invites.insert(invite("T2", { createdTs: 2000, roomId: "!other:hs" }));
      assert.equal((await s.invites.get("T1"))?.details.room_name, "Room");
      assert.equal((await s.invites.findDuplicate("!room:hs", "@alice:hs", "email", "bob@example.org", 500, 1500))?.token, "T1");
      assert.equal(await s.invites.findDuplicate("!room:hs", "@alice:hs", "email", "bob@example.org", 1001, 1500), undefined);
      assert.equal(await s.invites.findDuplicate("!room:hs", "@alice:hs", "email", "bob@example.org", 500, 20_000), undefined, "expired");
      assert.deepEqual((await s.invites.pendingFor("email", "bob@example.org", 3000)).map((i) => i.token), ["T1", "T2"]);
      assert.equal(await s.invites.ephemeralKeyValid("pk_T1", 3000), true);
      assert.equal(await s.invites.ephemeralKeyValid("pk_T1", 10_000), false);
      await s.invites.markDelivered(["T1"], 3000);
      assert.deepEqual((await s.invites.pendingFor("email", "bob@example.org", 3000)).map((i) => i.token), ["T2"]);
      await s.delivery.enqueue([{ mxid: "@b:hs", token: "T2", medium: "email", address: "bob@example.org" }], 3000);
      assert.equal(await s.invites.purgeExpired(10_000), 2);
      assert.equal(await s.invites.get("T1"), undefined);
      assert.equal((await s.delivery.counts()).pending, 0, "queued deliveries of purged invites go too");
    });

    it("delivery queue: enqueue once, claim with lease, reschedule, deliver, fail", async () => {
      const items = [
        { mxid: "@b:hs", token: "Q1", medium: "email", address: "b@x" },
        { mxid: "@b:hs", token: "Q2", medium: "email", address: "b@x" },
      ];
      await s.delivery.enqueue(items, 100);
      await s.delivery.enqueue(items, 100);
      assert.equal((await s.delivery.counts()).pending, 2);
      const claim = (now: number) => inTransaction(handle.db, (trx) => createStores(trx, handle.engine).delivery.claimDue(now, 10, 1000));
      const c1 = await claim(100);
      assert.equal(c1.length, 2);
      assert.equal((await claim(500)).length, 0, "claimed rows are leased");
      assert.equal(await s.delivery.nextDue(), 1100);
      assert.equal((await claim(1100)).length, 2, "a lapsed lease makes rows due again");
      await s.delivery.reschedule([{ mxid: "@b:hs", token: "Q1" }], 1, 5000, "HTTP 503", 1100);
      await s.delivery.markDelivered([{ mxid: "@b:hs", token: "Q2" }], 1100);
      assert.deepEqual(await s.delivery.counts(), { pending: 1, delivered: 1, failed: 0 });
      assert.equal((await claim(4999)).length, 0);
      const again = await claim(5000);
      assert.equal(again[0]?.attempts, 1);
      await s.delivery.markFailed([{ mxid: "@b:hs", token: "Q1" }], "HTTP 400", 5000);
      assert.deepEqual(await s.delivery.counts(), { pending: 0, delivered: 1, failed: 1 });
      const listed = await s.delivery.list();
      assert.equal(listed.find((r) => r.token === "Q1")?.lastError, "HTTP 400");
    });

    it("delivery queue: concurrent claimers never take the same row", async () => {
      const items = Array.from({ length: 40 }, (_, i) => ({ mxid: "@c:hs", token: `C${i}`, medium: "email", address: "c@x" }));
      await s.delivery.enqueue(items, 10_000);
      const claim = () => inTransaction(handle.db, (trx) => createStores(trx, handle.engine).delivery.claimDue(10_000, 15, 60_000), 10);
      const results = await Promise.all([claim(), claim(), claim(), claim()]);
      const tokens = results.flat().map((r) => r.token);
      assert.equal(new Set(tokens).size, tokens.length, "no row claimed twice");
      assert.equal(tokens.length, 40);
    });
  });
}
