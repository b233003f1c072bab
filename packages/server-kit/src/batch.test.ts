import { test } from "node:test";
import assert from "node:assert/strict";
import { batched } from "./batch.js";

test("batched: calls of one turn share a run, each gets its own result; later calls form the next run; a failed run fails only its callers", async () => {
  const runs: number[][] = [];
  let failNext = false;
  const double = batched(
    async (xs: number[]) => {
      runs.push(xs);
      if (failNext) {
        failNext = false;
        throw new Error("run failed");
      }
      return xs.map((x) => x * 2);
    },
    { max: 3 },
  );
  assert.deepEqual(await Promise.all([1, 2, 3, 4].map(double)), [2, 4, 6, 8]);
  assert.deepEqual(runs, [[1, 2, 3], [4]], "at most 3 per run");
  failNext = true;
  const failed = Promise.all([double(5), double(6)]);
  await assert.rejects(failed, /run failed/);
  assert.equal(await double(7), 14, "the next run works again");
  assert.deepEqual(runs.slice(2), [[5, 6], [7]]);
});

test("batched with delayMs: calls within the delay share one run", async () => {
  const runs: string[][] = [];
  const mark = batched(async (xs: string[]) => (runs.push(xs), xs.map(() => undefined)), { delayMs: 20 });
  const a = mark("a");
  await new Promise((r) => setTimeout(r, 5));
  await Promise.all([a, mark("b")]);
  assert.deepEqual(runs, [["a", "b"]]);
});
