/**
 * Issue 9, SDK side of "exactly once": `inviteBy3PID` never resends the invite POST once it may
 * have reached the server (a reset connection, a timeout, a 5xx are returned, not retried); a 429
 * (nothing happened) and a connection refused before sending are retried. Against a plain HTTP
 * server on 127.0.0.1 that counts what arrives.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { freePort } from "@beckon/test-support";
import { MatrixClient } from "@beckon/client";
import { startFakeServer, startLifeStack, type FakeAnswer, type FakeServer } from "./lifecycle-support.js";

describe("SDK: the 3PID invite POST is never blindly resent", { timeout: 60_000 }, () => {
  let hs: FakeServer;
  let answers: FakeAnswer[] = [];
  before(async () => {
    hs = await startFakeServer(() => answers.shift() ?? { status: 200, json: {} });
  });
  after(async () => {
    await hs?.close();
  });
  const target = { idServer: "127.0.0.1:1", idAccessToken: "t", medium: "email" as const, address: "x@example.org" };
  const client = (baseUrl: string) =>
    new MatrixClient({ baseUrl, accessToken: "a", userId: "@alice:localhost", defaults: { timeoutMs: 1000, backoff: { initialMs: 10, factor: 1, maxMs: 10, jitter: 0 } } });
  const posts = () => hs.requests.filter((r) => r.method === "POST" && r.path.endsWith("/invite")).length;

  for (const [name, answer] of [
    ["a reset connection", "destroy"],
    ["a 502", { status: 502, json: { errcode: "M_UNKNOWN", error: "x" } }],
    ["a 504", { status: 504, json: { errcode: "M_UNKNOWN", error: "x" } }],
    ["a timeout", "hang"],
  ] as [string, FakeAnswer][]) {
    it(`${name} after the POST was sent → returned to the caller, sent once`, async () => {
      const before = posts();
      answers = [answer, answer, answer, answer];
      await assert.rejects(client(hs.url).inviteBy3PID("!r:localhost", target));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(posts() - before, 1);
    });
  }

  it("createRoom with invite_3pid: a 502 is returned, the POST sent once", async () => {
    const before = hs.requests.filter((r) => r.path.endsWith("/createRoom")).length;
    answers = [{ status: 502, json: { errcode: "M_UNKNOWN", error: "x" } }, { status: 502, json: { errcode: "M_UNKNOWN", error: "x" } }];
    await assert.rejects(client(hs.url).createRoom({ invite_3pid: [{ id_server: "127.0.0.1:1", id_access_token: "t", medium: "email", address: "x@example.org" }] }));
    assert.equal(hs.requests.filter((r) => r.path.endsWith("/createRoom")).length - before, 1);
  });

  it("a 429 (nothing happened) is retried after retry_after_ms", async () => {
    const before = posts();
    answers = [{ status: 429, json: { errcode: "M_LIMIT_EXCEEDED", error: "slow down", retry_after_ms: 50 } }];
    assert.deepEqual(await client(hs.url).inviteBy3PID("!r:localhost", target), {});
    assert.equal(posts() - before, 2);
  });

  it("a connection refused before sending is retried (and fails cleanly when nobody listens)", async () => {
    const port = await freePort();
    const c = client(`http://127.0.0.1:${port}`);
    let retries = 0;
    c.transport.events.on((e) => {
      if (e.type === "retry-scheduled") retries++;
    });
    await assert.rejects(c.inviteBy3PID("!r:localhost", target));
    assert.ok(retries >= 1, "retried after the refusal");
  });
});

describe("both servers: the skip-TLS-checks switch is off by default and loudly logged when on", { timeout: 90_000 }, () => {
  // Off by default: "the homeserver serves its key …" in lifecycle-invites.test.ts checks the default stack's logs.
  it("outbound.insecure_skip_tls_verify: true → each server's log warns about it at start", async () => {
    const on = { outbound: { insecure_skip_tls_verify: true, allow_private: true } };
    const stack = await startLifeStack({ engine: "sqlite", homeserver: on, identityServer: on });
    try {
      const logs = stack.logs();
      const sections = logs.split(/^=== /m).filter(Boolean);
      for (const name of ["homeserver", "identity-server"]) {
        const section = sections.find((s) => s.startsWith(name)) ?? "";
        assert.match(section, /insecure_skip_tls_verify|INSECURE/i, `${name} warns: ${section.slice(0, 2000)}`);
      }
    } finally {
      await stack.close();
    }
  });
});
