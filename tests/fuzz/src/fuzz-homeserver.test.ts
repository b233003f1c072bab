/** Property-based fuzzing of every homeserver route (issue 7, "Bad input"). */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { formatStats, fuzzRuns, fuzzSeed, runFuzz } from "./runner.js";
import { KNOWN_DEFECTS } from "./known-defects.js";
import { startStack, type Stack } from "./stack.js";
import { buildWorld, secretsOf, homeserverTarget, type World } from "./targets.js";

let stack: Stack;
let world: World;
before(async () => {
  stack = await startStack();
  world = await buildWorld(stack);
});
after(async () => {
  await stack.close();
});

test(`homeserver: ${fuzzRuns()} hostile requests over every route keep every invariant`, { timeout: process.env.BECKON_SOAK ? 3_600_000 : 300_000 }, async () => {
  const target = homeserverTarget(stack, world);
  assert.ok(target.endpoints.length >= 30, `only ${target.endpoints.length} routes found`);
  const stats = await runFuzz(target, { numRuns: fuzzRuns(), seed: fuzzSeed(), knownDefects: KNOWN_DEFECTS });
  console.log(formatStats("homeserver", stats));
  assert.ok(stats.cases >= fuzzRuns());
  // Secrets used by the run never reach the logs (issue 7, "Tokens and secrets").
  const logs = stack.hsLogs.text() + "\n" + stack.isLogs.text();
  for (const [what, secret] of Object.entries(secretsOf(world))) assert.ok(!logs.includes(secret), `${what} appears in the logs`);
  for (const d of target.endpoints) assert.ok((stats.byTarget.get(d.id) ?? 0) > 0 || stats.cases < 500, `${d.id} never fuzzed`);
});
