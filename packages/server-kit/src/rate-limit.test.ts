import { test } from "node:test";
import assert from "node:assert/strict";
import { isMatrixError } from "@beckon/protocol";
import { FakeClock } from "./clock.js";
import { createRateLimiter, rateLimitError } from "./rate-limit.js";

test("token bucket: burst, refill and retry_after", () => {
  const clock = new FakeClock();
  const l = createRateLimiter({ perSecond: 2, burst: 3, clock });
  for (let i = 0; i < 3; i++) assert.deepEqual(l.take("a"), { ok: true });
  assert.deepEqual(l.take("a"), { ok: false, retryAfterMs: 500 });
  assert.deepEqual(l.take("b"), { ok: true }, "keys are independent");
  clock.advance(250);
  assert.deepEqual(l.take("a"), { ok: false, retryAfterMs: 250 });
  clock.advance(250);
  assert.deepEqual(l.take("a"), { ok: true });
  clock.advance(60_000);
  for (let i = 0; i < 3; i++) assert.equal(l.take("a").ok, true, "refill is capped at burst");
  assert.equal(l.take("a").ok, false);
});

test("cost, and a cost above the burst needs a full bucket", () => {
  const clock = new FakeClock();
  const l = createRateLimiter({ perSecond: 1, burst: 4, clock });
  assert.equal(l.take("k", 3).ok, true);
  assert.deepEqual(l.take("k", 2), { ok: false, retryAfterMs: 1000 });
  clock.advance(3000);
  assert.equal(l.take("k", 100).ok, true);
  assert.deepEqual(l.take("k", 100), { ok: false, retryAfterMs: 4000 });
});

test("memory is bounded: least recently used keys are evicted", () => {
  const clock = new FakeClock();
  const l = createRateLimiter({ perSecond: 1, burst: 1, maxKeys: 3, clock });
  l.take("a");
  l.take("b");
  l.take("c");
  l.take("a"); // a is now most recent (and limited)
  l.take("d"); // evicts b
  assert.equal(l.size, 3);
  assert.equal(l.take("a").ok, false, "a was kept");
  assert.equal(l.take("b").ok, true, "b was forgotten, so it starts full");
  for (let i = 0; i < 10_000; i++) l.take(`k${i}`);
  assert.equal(l.size, 3);
});

test("disabled limiter always allows; bad options refused", () => {
  const l = createRateLimiter({ perSecond: 1, burst: 1, enabled: false });
  for (let i = 0; i < 100; i++) assert.equal(l.take("x").ok, true);
  assert.equal(l.size, 0);
  assert.throws(() => createRateLimiter({ perSecond: 0, burst: 1 }), RangeError);
  assert.throws(() => createRateLimiter({ perSecond: 1, burst: 0 }), RangeError);
});

test("rateLimitError is a 429 M_LIMIT_EXCEEDED with retry_after_ms", () => {
  const e = rateLimitError(1234.2);
  assert.ok(isMatrixError(e));
  assert.equal(e.status, 429);
  assert.deepEqual(e.toJSON(), { errcode: "M_LIMIT_EXCEEDED", error: "Too many requests", retry_after_ms: 1235 });
});

test("a limiter wired into the router answers 429 with Retry-After", async () => {
  const { endpoint } = await import("@beckon/protocol");
  const { createHttpApp, createRouter } = await import("./http.js");
  const clock = new FakeClock();
  const limiter = createRateLimiter({ perSecond: 0.5, burst: 1, clock });
  const d = endpoint({ id: "test.limited", api: "client", method: "GET", path: "/_test/limited", auth: "none", rateLimited: true });
  const m = createHttpApp();
  createRouter(m, {
    authenticators: {},
    rateLimit: (req) => {
      const r = limiter.take(req.ip);
      if (!r.ok) throw rateLimitError(r.retryAfterMs);
    },
  }).add(d, () => ({}));
  await m.app.ready();
  assert.equal((await m.app.inject({ method: "GET", url: "/_test/limited" })).statusCode, 200);
  const r = await m.app.inject({ method: "GET", url: "/_test/limited" });
  assert.equal(r.statusCode, 429);
  assert.equal(r.headers["retry-after"], "2");
  assert.deepEqual(r.json(), { errcode: "M_LIMIT_EXCEEDED", error: "Too many requests", retry_after_ms: 2000 });
  clock.advance(2000);
  assert.equal((await m.app.inject({ method: "GET", url: "/_test/limited" })).statusCode, 200);
  await m.app.close();
});
