#!/usr/bin/env node
// Runs one built benchmark: `npm run bench -- <name> [args…]` → node bench/dist/<name>.js [args…].
// (`npm run bench` builds first.) Without a name, lists the benchmarks that exist.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const dist = join(root, "bench", "dist");
const available = existsSync(dist)
  ? readdirSync(dist)
      .filter((f) => f.endsWith(".js") && !f.endsWith(".test.js"))
      .map((f) => f.slice(0, -3))
      .sort()
  : [];

const [name, ...rest] = process.argv.slice(2);
if (!name || name === "--help" || name === "-h") {
  console.log(`usage: npm run bench -- <name> [args…]\navailable: ${available.join(", ") || "(none built: run npm run build)"}`);
  process.exit(name ? 0 : 1);
}
if (!/^[A-Za-z0-9_-]+$/.test(name) || !available.includes(name)) {
  console.error(`unknown benchmark "${name}"; available: ${available.join(", ") || "(none built)"}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, [join(dist, `${name}.js`), ...rest], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
