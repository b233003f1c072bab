import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MatrixClient } from "../api/matrix-client.js";
import { errorKind } from "../http/errors.js";
import { FakeClock } from "../testing/fake-clock.js";
import { FakeFetch, json, networkFailure } from "../testing/fake-fetch.js";
import { syncLoop } from "./sync.js";

function setup(handlers: ConstructorParameters<typeof FakeFetch>[0]) {
  const ff = new FakeFetch(handlers);
  const clock = new FakeClock();
  const client = new MatrixClient({ baseUrl: "http://hs", accessToken: "t", fetch: ff.fetch, clock, random: () => 0 });
  return { ff, clock, client };
}

describe("syncLoop (fake clock)", () => {
  it("long-polls from the last token and backs off exponentially on failures", async () => {
    const { ff, clock, client } = setup([
      () => json(200, { next_batch: "s1" }),
      () => new Response("bad gateway", { status: 502 }),
      () => {
        throw networkFailure("ECONNRESET");
      },
      () => json(200, { next_batch: "s2" }),
    ]);
    const errors: number[] = [];
    const loop = syncLoop(client, { timeoutMs: 25_000, onError: (_e, d) => errors.push(d) });
    assert.equal((await loop.next()).value?.next_batch, "s1");
    const second = loop.next();
    await clock.advance(999);
    assert.equal(ff.calls.length, 2);
    await clock.advance(1);
    assert.equal(ff.calls.length, 3);
    await clock.advance(2000);
    assert.equal(ff.calls.length, 4);
    assert.equal((await second).value?.next_batch, "s2");
    assert.deepEqual(errors, [1000, 2000]);
    assert.equal(loop.since, "s2");
    assert.match(ff.calls[0]!.url, /sync\?timeout=0$/);
    assert.match(ff.calls[3]!.url, /sync\?since=s1&timeout=25000$/);
  });

  it("ends on an unauthorised answer, rethrowing it", async () => {
    const { client } = setup([() => json(401, { errcode: "M_UNKNOWN_TOKEN", error: "gone", soft_logout: true })]);
    const loop = syncLoop(client);
    await assert.rejects(loop.next(), (e) => errorKind(e) === "unauthorised");
    assert.equal((await loop.next()).done, true);
  });

  it("stop() during a back-off wait ends the loop without another request", async () => {
    const { ff, clock, client } = setup(() => json(503, { errcode: "M_UNKNOWN", error: "x" }));
    const loop = syncLoop(client);
    const next = loop.next();
    await clock.advance(10);
    assert.equal(ff.calls.length, 1);
    loop.stop();
    assert.equal((await next).done, true);
    await clock.advance(120_000);
    assert.equal(ff.calls.length, 1);
    assert.deepEqual(clock.pending, []);
  });
});
