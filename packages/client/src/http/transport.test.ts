import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { v, MatrixError } from "@beckon/protocol";
import { Transport, type HttpRequest } from "./transport.js";
import { ConnectionError, HttpError, MatrixCallError, errorKind, retryAfterMs, type ErrorKind } from "./errors.js";
import type { RequestEvent } from "./events.js";
import { FakeClock } from "../testing/fake-clock.js";
import { FakeFetch, hang, json, networkFailure } from "../testing/fake-fetch.js";

const BASE = "http://127.0.0.1:1";
const get: HttpRequest = { baseUrl: BASE, method: "GET", path: "/_matrix/client/v3/account/whoami", accessToken: "secret-token-123" };
const post: HttpRequest = { baseUrl: BASE, method: "POST", path: "/_matrix/client/v3/rooms/!r%3Ahs/invite", body: { medium: "email", address: "a@b.c" }, accessToken: "secret-token-123" };

function setup(handlers: ConstructorParameters<typeof FakeFetch>[0], random = () => 0) {
  const clock = new FakeClock();
  const ff = new FakeFetch(handlers);
  const events: RequestEvent[] = [];
  const errors: unknown[] = [];
  const t = new Transport({ fetch: ff.fetch, clock, random, onBackgroundError: (e) => errors.push(e) });
  t.events.on((e) => events.push(e));
  return { clock, ff, t, events, errors };
}

/** Attaches a handler at once so a rejection is never "unhandled" while time is advanced. */
function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

describe("Transport: success paths", () => {
  it("sends auth, JSON, encoded query; parses and validates", async () => {
    const { t, ff } = setup([() => json(200, { user_id: "@a:hs" })]);
    const res = await t.send({ ...get, query: { since: "s 1&x", v: ["a", "b"], none: undefined }, validate: v.object({ user_id: v.string() }) });
    assert.equal(res.user_id, "@a:hs");
    const call = ff.calls[0]!;
    assert.equal(call.headers["authorization"], "Bearer secret-token-123");
    assert.equal(call.url, `${BASE}/_matrix/client/v3/account/whoami?since=s+1%26x&v=a&v=b`);
  });

  it("POST without a body sends {}", async () => {
    const { t, ff } = setup([() => json(200, {})]);
    await t.send({ baseUrl: BASE, method: "POST", path: "/x" });
    assert.equal(ff.calls[0]!.body, "{}");
    assert.equal(ff.calls[0]!.headers["content-type"], "application/json");
  });
});

describe("Transport: typed errors", () => {
  const cases: [number, unknown, ErrorKind][] = [
    [401, { errcode: "M_UNKNOWN_TOKEN", error: "x", soft_logout: true }, "unauthorised"],
    [401, { errcode: "M_UNAUTHORIZED", error: "x" }, "unauthorised"],
    [403, { errcode: "M_FORBIDDEN", error: "x" }, "content-access"],
    [404, { errcode: "M_NOT_FOUND", error: "x" }, "not-found"],
    [404, { errcode: "M_UNRECOGNIZED", error: "x" }, "not-implemented"],
    [405, { errcode: "M_UNRECOGNIZED", error: "x" }, "not-implemented"],
    [400, { errcode: "M_BAD_JSON", error: "x" }, "incorrect-request"],
    [400, { errcode: "M_UNSUPPORTED_ROOM_VERSION", error: "x" }, "unsupported-room-version"],
    [403, { errcode: "M_CONSENT_NOT_GIVEN", error: "x", consent_uri: "https://c" }, "user-consent-required"],
    [403, { errcode: "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM", error: "x" }, "cannot-leave-room"],
    [403, { errcode: "M_USER_DEACTIVATED", error: "x" }, "user-deactivated"],
    [511, { errcode: "M_UNKNOWN", error: "portal" }, "network-auth-required"],
    [500, { errcode: "M_UNKNOWN", error: "x" }, "server-error"],
  ];
  for (const [status, body, kind] of cases) {
    it(`${status} ${(body as { errcode: string }).errcode} → ${kind}`, async () => {
      const { t } = setup([() => json(status, body)]);
      const r = await settle(t.send(get, { maxAttempts: 1 }));
      assert.ok(!r.ok);
      assert.ok(r.error instanceof MatrixCallError);
      assert.ok(r.error instanceof MatrixError);
      assert.equal(errorKind(r.error), kind);
      assert.equal(r.error.status, status);
      assert.equal(r.error.errcode, (body as { errcode: string }).errcode);
      if (kind === "unauthorised" && (body as { soft_logout?: boolean }).soft_logout) assert.equal(r.error.softLogout, true);
      if (kind === "user-consent-required") assert.equal(r.error.extra["consent_uri"], "https://c");
    });
  }

  it("non-JSON failures are HttpErrors (404/405 → not-implemented, 502 → server-error)", async () => {
    for (const [status, kind] of [[404, "not-implemented"], [405, "not-implemented"], [502, "server-error"], [511, "network-auth-required"]] as const) {
      const { t } = setup([() => new Response("<html>nope</html>", { status })]);
      const r = await settle(t.send(get, { maxAttempts: 1 }));
      assert.ok(!r.ok && r.error instanceof HttpError);
      assert.equal(r.error.kind, kind);
      assert.equal(r.error.status, status);
    }
  });

  it("a 2xx that is not JSON, or misses keys, is an incorrect response", async () => {
    const { t } = setup([() => new Response("hello", { status: 200 }), () => json(200, { nope: 1 })]);
    const a = await settle(t.send(get));
    assert.ok(!a.ok && a.error instanceof HttpError && a.error.kind === "incorrect-response");
    const b = await settle(t.send({ ...get, validate: v.object({ user_id: v.string() }) }));
    assert.ok(!b.ok && b.error instanceof HttpError);
    assert.equal(b.error.kind, "incorrect-response");
    assert.match(b.error.message, /user_id/);
  });
});

describe("Transport: redaction", () => {
  it("never prints tokens: query access_token, Authorization, echoed tokens", async () => {
    const { t } = setup([
      () => json(403, { errcode: "M_FORBIDDEN", error: "token secret-token-123 is not allowed", echo: "Bearer secret-token-123" }),
      () => new Response("Bearer secret-token-123 rejected", { status: 400 }),
      () => {
        throw networkFailure("ECONNRESET");
      },
    ]);
    const req: HttpRequest = { ...get, query: { access_token: "qs-secret-999", private_key: "pk-secret" } };
    for (let i = 0; i < 3; i++) {
      const r = await settle(t.send(req, { maxAttempts: 1 }));
      assert.ok(!r.ok && r.error instanceof Error);
      const printed = `${r.error.message} ${String(r.error)} ${JSON.stringify(r.error)} ${r.error.stack ?? ""} ${inspect(r.error, { depth: 5 })}`;
      assert.doesNotMatch(printed, /secret-token-123|qs-secret-999|pk-secret/);
      assert.match(printed, /access_token=<redacted>/);
    }
  });
});

describe("Transport: 429", () => {
  it("retries a POST after retry_after_ms exactly, with events", async () => {
    const { t, ff, clock, events } = setup([() => json(429, { errcode: "M_LIMIT_EXCEEDED", error: "slow", retry_after_ms: 2000 }), () => json(200, {})]);
    const p = settle(t.send(post));
    await clock.advance(1999);
    assert.equal(ff.calls.length, 1);
    await clock.advance(1);
    assert.equal(ff.calls.length, 2);
    assert.deepEqual(await p, { ok: true, value: {} });
    assert.deepEqual(
      events.map((e) => [e.type, e.type === "retry-scheduled" ? e.delayMs : e.type === "rate-limited" ? e.retryAfterMs : 0]),
      [["rate-limited", 2000], ["retry-scheduled", 2000]],
    );
  });

  it("obeys Retry-After in seconds and as a date", async () => {
    const { t, ff, clock } = setup([
      () => new Response("", { status: 429, headers: { "retry-after": "3" } }),
      () => new Response("", { status: 429, headers: { "retry-after": new Date(clock.now() + 5000).toUTCString() } }),
      () => json(200, { ok: 1 }),
    ]);
    const p = settle(t.send(post));
    await clock.advance(2999);
    assert.equal(ff.calls.length, 1);
    await clock.advance(1);
    assert.equal(ff.calls.length, 2);
    await clock.advance(5000);
    assert.equal(ff.calls.length, 3);
    assert.deepEqual(await p, { ok: true, value: { ok: 1 } });
  });

  it("returns the 429 at once when the wait would pass the deadline or the cap", async () => {
    const limited = () => json(429, { errcode: "M_LIMIT_EXCEEDED", error: "slow", retry_after_ms: 10_000 });
    for (const opts of [{ deadlineMs: 5000 }, { maxRetryAfterMs: 9999 }]) {
      const { t, ff, clock } = setup([limited, () => json(200, {})]);
      const p = settle(t.send(post, opts));
      await clock.flush();
      const r = await p;
      assert.ok(!r.ok);
      assert.equal(errorKind(r.error), "too-many-requests");
      assert.equal(retryAfterMs(r.error), 10_000);
      assert.equal(ff.calls.length, 1);
      assert.deepEqual(clock.pending, []);
    }
  });

  it("gives up after maxAttempts and reports the delay", async () => {
    const { t } = setup(() => json(429, { errcode: "M_LIMIT_EXCEEDED", error: "slow", retry_after_ms: 10 }));
    const r = await settle(t.send(get, { maxAttempts: 1 }));
    assert.ok(!r.ok);
    assert.equal(errorKind(r.error), "too-many-requests");
    assert.equal(retryAfterMs(r.error), 10);
  });
});

describe("Transport: 5xx and network retries", () => {
  it("retries a GET on 503 with exponential back-off and jitter", async () => {
    let n = 0;
    const { t, ff, clock, events } = setup(() => (++n < 3 ? json(503, { errcode: "M_UNKNOWN", error: "down" }) : json(200, {})), () => 0.5);
    const p = settle(t.send(get, { backoff: { initialMs: 100, factor: 2, jitter: 0.5 } }));
    await clock.advance(75);
    assert.equal(ff.calls.length, 2); // 100 · (1 − 0.5·0.5)
    await clock.advance(149);
    assert.equal(ff.calls.length, 2);
    await clock.advance(1); // 200 · 0.75
    assert.equal(ff.calls.length, 3);
    assert.ok((await p).ok);
    assert.deepEqual(
      events.filter((e) => e.type === "retry-scheduled").map((e) => (e.type === "retry-scheduled" ? [e.delayMs, e.reason] : [])),
      [[75, "server-error"], [150, "server-error"]],
    );
  });

  it("does not retry a POST on 502/503/504 or a reset, but does when marked idempotent", async () => {
    for (const answer of [() => new Response("bad gateway", { status: 502 }), () => json(504, { errcode: "M_UNKNOWN", error: "t" })]) {
      const { t, ff } = setup([answer, () => json(200, {})]);
      const r = await settle(t.send(post));
      assert.ok(!r.ok);
      assert.equal(ff.calls.length, 1);
      const again = setup([answer, () => json(200, {})]);
      const p = settle(again.t.send(post, { idempotent: true }));
      await again.clock.advance(1000);
      assert.ok((await p).ok);
      assert.equal(again.ff.calls.length, 2);
    }
    const reset = setup([
      () => {
        throw networkFailure("ECONNRESET");
      },
    ]);
    const r = await settle(reset.t.send(post));
    assert.ok(!r.ok && r.error instanceof ConnectionError);
    assert.equal(r.error.kind, "network");
    assert.equal(r.error.maybeSent, true);
    assert.equal(reset.ff.calls.length, 1);
  });

  it("retries even a POST when the connection was refused before sending", async () => {
    const { t, ff, clock } = setup([
      () => {
        throw networkFailure("ECONNREFUSED");
      },
      () => json(200, {}),
    ]);
    const p = settle(t.send(post));
    await clock.advance(500);
    assert.ok((await p).ok);
    assert.equal(ff.calls.length, 2);
  });

  it("custom retryOn can veto or force", async () => {
    const { t, ff } = setup(() => json(503, { errcode: "M_UNKNOWN", error: "x" }));
    const r = await settle(t.send(get, { retryOn: () => false }));
    assert.ok(!r.ok);
    assert.equal(ff.calls.length, 1);
  });
});

describe("Transport: timeouts, deadline, abort", () => {
  it("per-attempt timeout: GET retried, then fails with kind timeout", async () => {
    const { t, ff, clock } = setup(hang);
    const p = settle(t.send(get, { timeoutMs: 1000, maxAttempts: 2, backoff: { initialMs: 10, jitter: 0 } }));
    await clock.advance(1000);
    assert.equal(ff.calls.length, 1);
    await clock.advance(10);
    assert.equal(ff.calls.length, 2);
    await clock.advance(1000);
    const r = await p;
    assert.ok(!r.ok && r.error instanceof ConnectionError);
    assert.equal(r.error.kind, "timeout");
  });

  it("a timed-out POST is not retried (it may have reached the server)", async () => {
    const { t, ff, clock } = setup(hang);
    const p = settle(t.send(post, { timeoutMs: 1000 }));
    await clock.advance(5000);
    const r = await p;
    assert.ok(!r.ok && r.error instanceof ConnectionError && r.error.kind === "timeout");
    assert.equal(ff.calls.length, 1);
  });

  it("the overall deadline stops retries and waits", async () => {
    const { t, ff, clock } = setup([() => json(503, { errcode: "M_UNKNOWN", error: "x" }), hang]);
    const p = settle(t.send(get, { deadlineMs: 1500, maxAttempts: 10, backoff: { initialMs: 1000, jitter: 0 } }));
    await clock.advance(1500);
    const r = await p;
    assert.ok(!r.ok && r.error instanceof ConnectionError);
    assert.equal(r.error.kind, "deadline");
    assert.equal(ff.calls.length, 2);
    await clock.advance(10_000);
    assert.equal(ff.calls.length, 2);
    assert.deepEqual(clock.pending, []);
  });

  it("a back-off that would pass the deadline returns the last error at once", async () => {
    const { t, ff, clock } = setup(() => json(503, { errcode: "M_UNKNOWN", error: "x" }));
    const p = settle(t.send(get, { deadlineMs: 1500, maxAttempts: 10, backoff: { initialMs: 1000, jitter: 0 } }));
    await clock.advance(1000);
    const r = await p;
    assert.ok(!r.ok);
    assert.equal(errorKind(r.error), "server-error");
    assert.equal(ff.calls.length, 2);
    assert.deepEqual(clock.pending, []);
  });

  it("aborting during a request, during a back-off wait, or before start", async () => {
    {
      const { t, clock } = setup(hang);
      const ctrl = new AbortController();
      const p = settle(t.send(get, { signal: ctrl.signal }));
      await clock.flush();
      ctrl.abort();
      const r = await p;
      assert.ok(!r.ok && r.error instanceof ConnectionError && r.error.kind === "aborted");
      assert.deepEqual(clock.pending, []);
    }
    {
      const { t, ff, clock } = setup(() => json(503, { errcode: "M_UNKNOWN", error: "x" }));
      const ctrl = new AbortController();
      const p = settle(t.send(get, { signal: ctrl.signal, backoff: { initialMs: 60_000 } }));
      await clock.flush();
      assert.equal(ff.calls.length, 1);
      ctrl.abort();
      const r = await p;
      assert.ok(!r.ok && r.error instanceof ConnectionError && r.error.kind === "aborted");
      await clock.advance(120_000);
      assert.equal(ff.calls.length, 1);
      assert.deepEqual(clock.pending, []);
    }
    {
      const { t, ff } = setup(() => json(200, {}));
      const r = await settle(t.send(post, { signal: AbortSignal.abort() }));
      assert.ok(!r.ok && r.error instanceof ConnectionError && r.error.kind === "aborted");
      assert.equal(r.error.maybeSent, false);
      assert.equal(ff.calls.length, 0);
    }
  });
});

describe("Transport: queues", () => {
  it("runs calls with one queue ID one at a time, in order", async () => {
    const resolvers: (() => void)[] = [];
    const { t, ff, clock } = setup((call) => new Promise<Response>((r) => resolvers.push(() => r(json(200, { url: call.url })))));
    const results = [1, 2, 3].map((i) => t.send({ ...get, path: `/q/${i}` }, { queueId: "room" }));
    const other = t.send({ ...get, path: "/other" }, { queueId: "elsewhere" });
    await clock.flush();
    assert.deepEqual(ff.calls.map((c) => c.url.slice(BASE.length)), ["/q/1", "/other"]);
    resolvers.shift()!();
    await clock.flush();
    assert.deepEqual(ff.calls.map((c) => c.url.slice(BASE.length)), ["/q/1", "/other", "/q/2"]);
    while (resolvers.length) {
      resolvers.shift()!();
      await clock.flush();
    }
    assert.deepEqual((await Promise.all(results)).map((r) => (r as { url: string }).url.slice(BASE.length)), ["/q/1", "/q/2", "/q/3"]);
    await other;
    assert.equal(t.queues.size(), 0);
  });

  it("CancelFutureIfFailed cancels the waiting calls; AlwaysContinue does not", async () => {
    for (const policy of ["CancelFutureIfFailed", "AlwaysContinue"] as const) {
      const { t, ff } = setup((call) => (call.url.endsWith("/1") ? json(403, { errcode: "M_FORBIDDEN", error: "no" }) : json(200, {})));
      const rs = await Promise.all([1, 2, 3].map((i) => settle(t.send({ ...post, path: `/q/${i}` }, { queueId: "q", queuePolicy: policy }))));
      assert.equal(errorKind(rs[0]!.ok ? undefined : rs[0]!.error), "content-access");
      if (policy === "CancelFutureIfFailed") {
        for (const r of rs.slice(1)) assert.ok(!r.ok && r.error instanceof ConnectionError && r.error.kind === "cancelled" && r.error.maybeSent === false);
        assert.equal(ff.calls.length, 1);
        // The queue is usable again afterwards.
        assert.ok((await settle(t.send({ ...post, path: "/q/4" }, { queueId: "q", queuePolicy: policy }))).ok);
      } else {
        assert.ok(rs[1]!.ok && rs[2]!.ok);
        assert.equal(ff.calls.length, 3);
      }
    }
  });

  it("aborting a queued call removes it without sending", async () => {
    const resolvers: (() => void)[] = [];
    const { t, ff, clock } = setup(() => new Promise<Response>((r) => resolvers.push(() => r(json(200, {})))));
    const first = t.send(get, { queueId: "q" });
    const ctrl = new AbortController();
    const second = settle(t.send(get, { queueId: "q", signal: ctrl.signal }));
    const third = t.send(get, { queueId: "q" });
    await clock.flush();
    ctrl.abort();
    const r = await second;
    assert.ok(!r.ok && r.error instanceof ConnectionError && r.error.kind === "aborted");
    assert.match(r.error.message, /GET http/);
    resolvers.shift()!();
    await first;
    await clock.flush();
    resolvers.shift()!();
    await third;
    assert.equal(ff.calls.length, 2);
  });
});

describe("Transport: events, progress, background jobs", () => {
  it("the async iterator yields events until aborted", async () => {
    const { t, clock } = setup([() => json(429, { errcode: "M_LIMIT_EXCEEDED", error: "", retry_after_ms: 5 }), () => json(200, {})]);
    const ctrl = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const e of t.events.stream({ signal: ctrl.signal })) seen.push(e.type);
    })();
    const p = t.send(get);
    await clock.advance(5);
    await p;
    ctrl.abort();
    await reading;
    assert.deepEqual(seen, ["rate-limited", "retry-scheduled"]);
  });

  it("reports download and upload progress", async () => {
    const payload = JSON.stringify({ data: "x".repeat(200_000) });
    const { t } = setup(() => new Response(payload, { status: 200, headers: { "content-length": String(payload.length) } }));
    const down: number[] = [];
    const up: number[] = [];
    await t.send({ ...post, rawBody: new Uint8Array(200_000) }, { onDownloadProgress: (p) => down.push(p.loaded), onUploadProgress: (p) => up.push(p.loaded) });
    assert.equal(down.at(-1), payload.length);
    assert.ok(down.length >= 2);
    assert.equal(up[0], 0);
    assert.equal(up.at(-1), 200_000);
    assert.ok(up.length >= 3, `chunked upload progress: ${up.join(",")}`);
  });

  it("background jobs report failures instead of rejecting", async () => {
    const { t, events, errors } = setup([]);
    const result = await t.background("refresh", async () => {
      throw new Error("boom");
    });
    assert.equal(result, undefined);
    assert.equal(errors.length, 1);
    assert.ok(events.some((e) => e.type === "background-error" && e.label === "refresh"));
    assert.equal(await t.background("ok", async () => 7), 7);
  });
});
