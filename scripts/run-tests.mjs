#!/usr/bin/env node
// Runs every built test file of the repository in one `node --test` run (one summary).
// Node 20's runner takes no globs and finds no .ts, so we collect dist/**/*.test.js here.
import { readdirSync, statSync, existsSync } from "node:fs";
import { join, relative } from "node:path";
import { spawnSync } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const roots = ["packages", "tests"].flatMap((d) =>
  existsSync(join(root, d)) ? readdirSync(join(root, d)).map((p) => join(root, d, p, "dist")) : [],
);
roots.push(join(root, "bench", "dist"));

function walk(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

const filter = process.argv.slice(2).filter((a) => !a.startsWith("--"));
let files = roots.flatMap((r) => walk(r, [])).sort();
if (filter.length) files = files.filter((f) => filter.some((x) => relative(root, f).includes(x)));
if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}
const concurrency = process.env.BECKON_TEST_CONCURRENCY ?? "2";
const args = ["--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files.map((f) => relative(root, f))];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
