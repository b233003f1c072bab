import { test, describe, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { isMatrixError, lookupHash, verifyXMatrixRequest, IDENTITY_UNBIND_URI } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { freePort } from "@beckon/test-support";
import { createIdentityClient, type IdentityClient } from "./client.js";
import { resolveIdentityServer, checkValidityUrl, isPublicIp } from "./trust.js";
import { fetchOutbound, rejectsMatrix, startFakeIdentityServer, type FakeIdentityServer } from "./testing.js";

const HS_SEED = new Uint8Array(32).fill(3);

describe("identity server trust (DECISIONS.md)", () => {
  const trust = { map: { "localhost:8090": "http://127.0.0.1:8090/" }, onlyMapped: false, allowPrivate: false };

  test("mapped names go to their base URL", () => {
    assert.deepEqual(resolveIdentityServer("localhost:8090", trust), { idServer: "localhost:8090", baseUrl: "http://127.0.0.1:8090", mapped: true });
  });
  test("public names go over https", () => {
    assert.equal(resolveIdentityServer("matrix.example.org", trust).baseUrl, "https://matrix.example.org");
    assert.equal(resolveIdentityServer("id.example.org:8443/sub", trust).baseUrl, "https://id.example.org:8443/sub");
    assert.equal(resolveIdentityServer("8.8.8.8:443", trust).baseUrl, "https://8.8.8.8:443");
  });
  for (const bad of ["127.0.0.1:8091", "localhost:9", "10.1.2.3", "[::1]:80", "[fe80::1]", "[::ffff:127.0.0.1]", "169.254.1.1", "https://example.org", "exa mple.org", "intranet"]) {
    test(`refuses ${bad} with M_SERVER_NOT_TRUSTED`, () => {
      assert.throws(() => resolveIdentityServer(bad, trust), (e: unknown) => isMatrixError(e) && e.errcode === "M_SERVER_NOT_TRUSTED" && e.status === 400);
    });
  }
  test("only_mapped refuses every unmapped server", () => {
    assert.throws(() => resolveIdentityServer("matrix.example.org", { ...trust, onlyMapped: true }), (e: unknown) => isMatrixError(e) && e.errcode === "M_SERVER_NOT_TRUSTED");
  });
  test("allow_private lets loopback through over https (SyTest's mock)", () => {
    assert.equal(resolveIdentityServer("127.0.0.1:8091", { ...trust, allowPrivate: true }).baseUrl, "https://127.0.0.1:8091");
  });
  test("key_validity_url: mapped base URLs and public https only", () => {
    assert.deepEqual(checkValidityUrl("http://127.0.0.1:8090/_matrix/identity/v2/pubkey/isvalid", trust), { mapped: true });
    assert.deepEqual(checkValidityUrl("https://id.example.org/_matrix/identity/v2/pubkey/isvalid", trust), { mapped: false });
    assert.equal(checkValidityUrl("http://id.example.org/_matrix/identity/v2/pubkey/isvalid", trust), undefined);
    assert.equal(checkValidityUrl("https://127.0.0.1:9/x", trust), undefined);
    assert.equal(checkValidityUrl("http://127.0.0.1:8091/x", trust), undefined);
    assert.equal(checkValidityUrl("not a url", trust), undefined);
  });
  test("isPublicIp", () => {
    assert.equal(isPublicIp("8.8.8.8"), true);
    assert.equal(isPublicIp("2606:4700::1111"), true);
    for (const ip of ["127.0.0.1", "10.0.0.1", "100.64.0.1", "::1", "::ffff:8.8.8.8", "2002::1", "64:ff9b::1", "fc00::1", "fe80::1", "ff02::1"]) {
      assert.equal(isPublicIp(ip), false, ip);
    }
  });
});

describe("identity server client against a misbehaving identity server", () => {
  let fake: FakeIdentityServer;
  let client: IdentityClient;
  let closedPort: number;

  before(async () => {
    fake = await startFakeIdentityServer();
    closedPort = await freePort();
  });
  after(() => fake.close());
  beforeEach(() => {
    fake.handlers.clear();
    fake.requests.length = 0;
    fake.bindings.clear();
    fake.tokenIn = "both";
    fake.nullForUnknown = false;
    fake.algorithms = ["none", "sha256"];
    client = createIdentityClient({
      outbound: fetchOutbound(),
      trust: { map: { [fake.name]: fake.baseUrl, [`localhost:${closedPort}`]: `http://127.0.0.1:${closedPort}` }, onlyMapped: false, allowPrivate: false },
      timeoutMs: 300,
      serverName: "hs.test",
      signingKey: { keyId: "ed25519:a", seed: HS_SEED },
    });
  });

  const is = () => client.resolve(fake.name);

  test("lookup hit with sha256, Bearer token", async () => {
    fake.bind("email", "bob@example.org", "@bob:hs.test");
    assert.equal(await client.lookup(is(), "swordfish", "email", "Bob@Example.ORG"), "@bob:hs.test");
    const lookup = fake.requests.find((r) => r.path.endsWith("/lookup"))!;
    assert.equal(lookup.headers.authorization, "Bearer swordfish");
    assert.deepEqual(lookup.body, { addresses: [lookupHash("bob@example.org", "email", "matrixrocks")], algorithm: "sha256", pepper: "matrixrocks" });
  });

  test("lookup miss: absent, and `null` as SyTest's mock answers", async () => {
    assert.equal(await client.lookup(is(), "swordfish", "email", "nobody@example.org"), undefined);
    fake.nullForUnknown = true;
    assert.equal(await client.lookup(is(), "swordfish", "email", "nobody@example.org"), undefined);
  });

  test("falls back to `none` when sha256 is not offered", async () => {
    fake.algorithms = ["none"];
    fake.bind("email", "bob@example.org", "@bob:hs.test");
    assert.equal(await client.lookup(is(), "swordfish", "email", "bob@example.org"), "@bob:hs.test");
    const lookup = fake.requests.find((r) => r.path.endsWith("/lookup"))!;
    assert.deepEqual(lookup.body, { addresses: ["bob@example.org email"], algorithm: "none", pepper: "matrixrocks" });
  });

  test("no usable algorithm → 502", async () => {
    fake.algorithms = ["md5"];
    await rejectsMatrix(client.lookup(is(), "swordfish", "email", "a@b.c"), "M_UNKNOWN", 502);
  });

  test("servers that want ?access_token= are accepted (Synapse's form)", async () => {
    fake.tokenIn = "query";
    fake.bind("email", "bob@example.org", "@bob:hs.test");
    assert.equal(await client.lookup(is(), "swordfish", "email", "bob@example.org"), "@bob:hs.test");
    const last = fake.requests.at(-1)!;
    assert.equal(last.query.get("access_token"), "swordfish");
  });

  test("SyTest's mock answers 400 M_MISSING_PARAM without its token: retried with the query form", async () => {
    fake.handlers.set("/_matrix/identity/v2/hash_details", (r, res) => {
      if (r.query.get("access_token") !== "swordfish") {
        res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ errcode: "M_MISSING_PARAM", error: "no token" }));
        return;
      }
      return "default";
    });
    assert.equal(await client.lookup(is(), "swordfish", "email", "x@example.org"), undefined);
  });

  test("the pepper changing between hash_details and lookup is survived", async () => {
    let first = true;
    fake.handlers.set("/_matrix/identity/v2/hash_details", (_r, res) => {
      if (first) {
        first = false;
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ lookup_pepper: "old", algorithms: ["sha256"] }));
        return;
      }
      return "default";
    });
    fake.bind("email", "bob@example.org", "@bob:hs.test");
    assert.equal(await client.lookup(is(), "swordfish", "email", "bob@example.org"), "@bob:hs.test");
  });

  test("unreachable port → 502 M_UNKNOWN", async () => {
    await rejectsMatrix(client.lookup(client.resolve(`localhost:${closedPort}`), "t", "email", "a@b.c"), "M_UNKNOWN", 502);
  });

  test("hanging past the timeout → 504 M_UNKNOWN", async () => {
    fake.handlers.set("/_matrix/identity/v2/hash_details", () => new Promise<void>(() => {}));
    const started = Date.now();
    await rejectsMatrix(client.lookup(is(), "swordfish", "email", "a@b.c"), "M_UNKNOWN", 504);
    assert.ok(Date.now() - started < 5000);
  });

  test("a peer that accepts and never answers (raw TCP) → 504", async () => {
    const srv = createServer(() => {});
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as { port: number }).port;
    const c = createIdentityClient({
      outbound: fetchOutbound(),
      trust: { map: { "silent:1": `http://127.0.0.1:${port}` }, onlyMapped: false, allowPrivate: false },
      timeoutMs: 200,
      serverName: "hs.test",
      signingKey: { keyId: "ed25519:a", seed: HS_SEED },
    });
    try {
      await rejectsMatrix(c.lookup(c.resolve("silent:1"), "t", "email", "a@b.c"), "M_UNKNOWN", 504);
    } finally {
      srv.close();
    }
  });

  test("HTML with 200 → 502", async () => {
    fake.handlers.set("/_matrix/identity/v2/hash_details", (_r, res) => {
      res.writeHead(200, { "content-type": "text/html" }).end("<html>hello</html>");
    });
    await rejectsMatrix(client.lookup(is(), "swordfish", "email", "a@b.c"), "M_UNKNOWN", 502);
  });

  test("JSON of the wrong shape → 502", async () => {
    fake.handlers.set("/_matrix/identity/v2/hash_details", (_r, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ lookup_pepper: 5 }));
    });
    await rejectsMatrix(client.lookup(is(), "swordfish", "email", "a@b.c"), "M_UNKNOWN", 502);
    fake.handlers.set("/_matrix/identity/v2/hash_details", () => "default");
    fake.handlers.set("/_matrix/identity/v2/lookup", (_r, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ mappings: { [lookupHash("a@b.c", "email", "matrixrocks")]: 42 } }));
    });
    await rejectsMatrix(client.lookup(is(), "swordfish", "email", "a@b.c"), "M_UNKNOWN", 502);
  });

  test("5xx → 502; 404 HTML → 502", async () => {
    fake.handlers.set("/_matrix/identity/v2/hash_details", (_r, res) => {
      res.writeHead(503).end("down");
    });
    await rejectsMatrix(client.lookup(is(), "swordfish", "email", "a@b.c"), "M_UNKNOWN", 502);
    fake.handlers.set("/_matrix/identity/v2/hash_details", (_r, res) => {
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>not found</h1>");
    });
    await rejectsMatrix(client.lookup(is(), "swordfish", "email", "a@b.c"), "M_UNKNOWN", 502);
  });

  test("Matrix 4xx → same errcode with 400, 403 for terms/forbidden, never 401", async () => {
    const answer = (status: number, body: object) =>
      fake.handlers.set("/_matrix/identity/v2/hash_details", (_r, res) => {
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
      });
    answer(403, { errcode: "M_TERMS_NOT_SIGNED", error: "sign the terms" });
    await rejectsMatrix(client.lookup(is(), "swordfish", "email", "a@b.c"), "M_TERMS_NOT_SIGNED", 403);
    answer(403, { errcode: "M_FORBIDDEN", error: "no" });
    await rejectsMatrix(client.lookup(is(), "swordfish", "email", "a@b.c"), "M_FORBIDDEN", 403);
    answer(401, { errcode: "M_UNAUTHORIZED", error: "bad token" });
    await rejectsMatrix(client.lookup(is(), "swordfish", "email", "a@b.c"), "M_UNAUTHORIZED", 400);
    answer(400, { errcode: "M_INVALID_PARAM", error: "bad" });
    await rejectsMatrix(client.lookup(is(), "swordfish", "email", "a@b.c"), "M_INVALID_PARAM", 400);
  });

  test("a 429 stays a 429 with retry_after_ms", async () => {
    fake.handlers.set("/_matrix/identity/v2/hash_details", (_r, res) => {
      res.writeHead(429, { "content-type": "application/json" }).end(JSON.stringify({ errcode: "M_LIMIT_EXCEEDED", error: "slow", retry_after_ms: 1500 }));
    });
    await assert.rejects(client.lookup(is(), "swordfish", "email", "a@b.c"), (e: unknown) => {
      assert.ok(isMatrixError(e));
      assert.equal(e.status, 429);
      assert.equal(e.errcode, "M_LIMIT_EXCEEDED");
      assert.equal(e.extra.retry_after_ms, 1500);
      return true;
    });
  });

  const details = {
    medium: "email",
    address: "carol@example.org",
    room_id: "!r:hs.test",
    sender: "@alice:hs.test",
    room_alias: "",
    room_avatar_url: "",
    room_join_rules: "invite",
    room_name: "Room",
    sender_display_name: "Alice",
    sender_avatar_url: "",
  };

  test("store-invite: the answer's keys are copied, the legacy pair from the answer", async () => {
    const out = await client.storeInvite(is(), "swordfish", details);
    assert.equal(out.kind, "stored");
    if (out.kind !== "stored") return;
    assert.equal(out.invite.public_key, fake.longTerm.publicKey);
    assert.equal(out.invite.key_validity_url, `${fake.baseUrl}/_matrix/identity/v2/pubkey/isvalid`);
    assert.equal(out.invite.public_keys.length, 2);
    assert.equal(out.invite.display_name, "Bob");
    const sent = fake.requests.find((r) => r.path.endsWith("/store-invite"))!;
    assert.deepEqual(sent.body, details);
    assert.equal(sent.headers.authorization, "Bearer swordfish");
  });

  test("store-invite: M_THREEPID_IN_USE with mxid → bound", async () => {
    fake.bind("email", "carol@example.org", "@carol:hs.test");
    assert.deepEqual(await client.storeInvite(is(), "swordfish", details), { kind: "bound", mxid: "@carol:hs.test" });
  });

  test("store-invite: M_THREEPID_IN_USE without mxid → 400 M_THREEPID_IN_USE", async () => {
    fake.handlers.set("/_matrix/identity/v2/store-invite", (_r, res) => {
      res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ errcode: "M_THREEPID_IN_USE", error: "bound" }));
    });
    await rejectsMatrix(client.storeInvite(is(), "swordfish", details), "M_THREEPID_IN_USE", 400);
  });

  test("store-invite: malformed answers → 502", async () => {
    for (const body of [
      { token: "t", display_name: "x", public_keys: [] },
      { token: "bad token!", display_name: "x", public_keys: [{ public_key: "k", key_validity_url: "u" }] },
      { token: "t", display_name: "x", public_key: "other", public_keys: [{ public_key: "k", key_validity_url: "u" }] },
      { token: "t", public_keys: [{ public_key: "k", key_validity_url: "u" }] },
      [1, 2],
    ]) {
      fake.handlers.set("/_matrix/identity/v2/store-invite", (_r, res) => {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
      });
      await rejectsMatrix(client.storeInvite(is(), "swordfish", details), "M_UNKNOWN", 502);
    }
  });

  test("bind sends {sid, client_secret, mxid} with the token", async () => {
    const out = await client.bind(is(), "swordfish", { sid: "s1", client_secret: "c1", mxid: "@bob:hs.test" });
    assert.deepEqual(out, { medium: "email", address: "bob@example.org" });
    const sent = fake.requests.find((r) => r.path.endsWith("/3pid/bind"))!;
    assert.deepEqual(sent.body, { sid: "s1", client_secret: "c1", mxid: "@bob:hs.test" });
  });

  test("unbind is signed the Synapse way (destination_is) and verifies", async () => {
    assert.equal(await client.unbind(fake.name, "@bob:hs.test", { medium: "email", address: "bob@example.org" }), "success");
    const sent = fake.requests.find((r) => r.path === IDENTITY_UNBIND_URI)!;
    const authorization = String(sent.headers.authorization);
    assert.match(authorization, new RegExp(`^X-Matrix origin="hs.test",destination="${fake.name}",key="ed25519:a",sig="`));
    const publicKey = nodeCryptoProvider.ed25519PublicKeySync(HS_SEED);
    const auth = await verifyXMatrixRequest({
      method: "POST",
      uri: IDENTITY_UNBIND_URI,
      content: sent.body,
      authorization,
      ourNames: [fake.name],
      variant: "destination_is",
      getKey: async (origin, keyId) => (origin === "hs.test" && keyId === "ed25519:a" ? publicKey : undefined),
    });
    assert.equal(auth.origin, "hs.test");
    assert.deepEqual(sent.body, { mxid: "@bob:hs.test", threepid: { medium: "email", address: "bob@example.org" } });
  });

  test("unbind: 404/400/501 → no-support; 403 → 403; 500 → 502", async () => {
    const answer = (status: number, body: object) =>
      fake.handlers.set(IDENTITY_UNBIND_URI, (_r, res) => {
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
      });
    answer(404, { errcode: "M_NOT_FOUND", error: "no" });
    assert.equal(await client.unbind(fake.name, "@bob:hs.test", { medium: "email", address: "b@x.org" }), "no-support");
    answer(403, { errcode: "M_FORBIDDEN", error: "no" });
    await rejectsMatrix(client.unbind(fake.name, "@bob:hs.test", { medium: "email", address: "b@x.org" }), "M_FORBIDDEN", 403);
    answer(500, { errcode: "M_UNKNOWN", error: "boom" });
    await rejectsMatrix(client.unbind(fake.name, "@bob:hs.test", { medium: "email", address: "b@x.org" }), "M_UNKNOWN", 502);
  });

  test("key validity: valid, invalid, unreachable, refused", async () => {
    const url = `${fake.baseUrl}/_matrix/identity/v2/pubkey/isvalid`;
    assert.equal(await client.checkKeyValidity(url, fake.longTerm.publicKey), "valid");
    assert.equal(fake.requests.at(-1)!.query.get("public_key"), fake.longTerm.publicKey);
    assert.equal(await client.checkKeyValidity(url, "AAAA"), "invalid");
    assert.equal(await client.checkKeyValidity(`http://127.0.0.1:${closedPort}/_matrix/identity/v2/pubkey/isvalid`, "k"), "unreachable");
    assert.equal(await client.checkKeyValidity("http://203.0.113.5/_matrix/identity/v2/pubkey/isvalid", "k"), "refused");
    fake.handlers.set("/_matrix/identity/v2/pubkey/isvalid", (_r, res) => {
      res.writeHead(200, { "content-type": "text/html" }).end("<p>");
    });
    assert.equal(await client.checkKeyValidity(url, fake.longTerm.publicKey), "unreachable");
    fake.handlers.set("/_matrix/identity/v2/pubkey/isvalid", (_r, res) => {
      res.writeHead(500).end();
    });
    assert.equal(await client.checkKeyValidity(url, fake.longTerm.publicKey), "unreachable");
  });

  test("hash_details is reused for a while (fewer round trips), and refetched after the TTL", async () => {
    let t0 = 1000;
    const c = createIdentityClient({
      outbound: fetchOutbound(),
      trust: { map: { [fake.name]: fake.baseUrl }, onlyMapped: false, allowPrivate: false },
      serverName: "hs.test",
      signingKey: { keyId: "ed25519:a", seed: HS_SEED },
      hashDetailsCacheMs: 60_000,
      now: () => t0,
    });
    const count = () => fake.requests.filter((r) => r.path.endsWith("/hash_details")).length;
    await c.lookup(c.resolve(fake.name), "swordfish", "email", "a@b.c");
    await c.lookup(c.resolve(fake.name), "swordfish", "email", "a@b.c");
    assert.equal(count(), 1);
    t0 += 60_001;
    await c.lookup(c.resolve(fake.name), "swordfish", "email", "a@b.c");
    assert.equal(count(), 2);
    // A pepper rotation is survived through M_INVALID_PEPPER.
    fake.pepper = "rotated";
    fake.bind("email", "bob@example.org", "@bob:hs.test");
    try {
      assert.equal(await c.lookup(c.resolve(fake.name), "swordfish", "email", "bob@example.org"), "@bob:hs.test");
    } finally {
      fake.pepper = "matrixrocks";
    }
  });

  test("oversized, TLS-failing and redirecting answers → 502", async () => {
    for (const kind of ["too_large", "tls", "network"]) {
      const c = createIdentityClient({
        outbound: {
          request: async () => {
            throw Object.assign(new Error(kind), { name: "OutboundError", kind });
          },
        },
        trust: { map: { x: "https://x.example.org" }, onlyMapped: false, allowPrivate: false },
        serverName: "hs.test",
        signingKey: { keyId: "ed25519:a", seed: HS_SEED },
      });
      await rejectsMatrix(c.lookup(c.resolve("x"), "t", "email", "a@b.c"), "M_UNKNOWN", 502);
    }
    fake.handlers.set("/_matrix/identity/v2/hash_details", (_r, res) => {
      res.writeHead(302, { location: "http://10.0.0.1/" }).end();
    });
    await rejectsMatrix(client.lookup(is(), "swordfish", "email", "a@b.c"), "M_UNKNOWN", 502);
  });

  test("a blocked target (outbound guard) → M_SERVER_NOT_TRUSTED", async () => {
    const c = createIdentityClient({
      outbound: {
        request: async () => {
          throw Object.assign(new Error("blocked"), { name: "OutboundError", kind: "blocked" });
        },
      },
      trust: { map: {}, onlyMapped: false, allowPrivate: false },
      serverName: "hs.test",
      signingKey: { keyId: "ed25519:a", seed: HS_SEED },
    });
    await rejectsMatrix(c.lookup(c.resolve("resolves-private.example.org"), "t", "email", "a@b.c"), "M_SERVER_NOT_TRUSTED", 400);
  });
});
