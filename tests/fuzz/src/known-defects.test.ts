/**
 * Replays the minimal request of every documented, unfixed defect (docs/RELIABILITY.md).
 * Each is a `todo` while it reproduces; once the owner's fix lands the test passes and says so,
 * and the entry should be removed from KNOWN_DEFECTS (the fuzzer then fails on a regression).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { KNOWN_DEFECTS } from "./known-defects.js";
import { startStack, type Stack } from "./stack.js";
import { buildWorld, type World } from "./targets.js";

let stack: Stack;
let world: World;
// Hooks only when there is something to replay: with no tests, node:test would still run a
// top-level `before` but never its `after`, leaving the servers open.
if (KNOWN_DEFECTS.length > 0) {
  before(async () => {
    stack = await startStack({ logLevel: "error" });
    world = await buildWorld(stack);
  });
  after(async () => {
    await stack.close();
  });
}

const fill = (s: string) => s.replace(/\{roomId\}/g, world.roomId).replace(/\{userId\}/g, world.alice.userId);

for (const d of KNOWN_DEFECTS) {
  test(`${d.id} (${d.owner}): ${d.summary.slice(0, 120)}`, async (t) => {
    const repro = d.repro;
    const app = typeof repro.url === "string" && repro.url.startsWith("/_matrix/identity") ? stack.is.app : stack.hs.app;
    const token = app === stack.is.app ? world.aliceIsToken : world.alice.token;
    const res = await app.inject({
      ...repro,
      url: fill(String(repro.url)),
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...(repro.headers as Record<string, string> | undefined) },
      remoteAddress: "127.0.0.1",
      ...(typeof repro.payload === "string" ? { payload: fill(repro.payload) } : {}),
    });
    const fixed = d.fixed({ status: res.statusCode, body: res.body, contentType: String(res.headers["content-type"] ?? "") });
    if (!fixed) {
      t.todo(`${d.id} still reproduces: ${res.statusCode} ${res.body.slice(0, 160)}`);
      return;
    }
    assert.ok(fixed);
    t.diagnostic(`${d.id} is fixed: remove it from KNOWN_DEFECTS`);
  });
}
