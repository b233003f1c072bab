/**
 * `beckon up` as a real process: starts what exists, prints the banner, stops everything on
 * SIGINT, and its children stop by themselves when `beckon up` is SIGKILLed.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, tempDir, waitFor } from "@beckon/test-support";
import { portIsFree } from "./up.js";
import { loadServerModule } from "./servers.js";

const BIN = fileURLToPath(new URL("./bin.js", import.meta.url));

interface Run {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function run(args: string[]): Run {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return { proc, output: () => out, exited };
}

async function ports(): Promise<{ hs: number; is: number; mail: number; ui: number }> {
  const set = new Set<number>();
  while (set.size < 4) set.add(await freePort());
  const [hs, is, mail, ui] = [...set] as [number, number, number, number];
  return { hs, is, mail, ui };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("beckon up (process)", () => {
  const dirs: { cleanup: () => void }[] = [];
  const procs: ChildProcess[] = [];
  after(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    for (const d of dirs) d.cleanup();
  });

  it("starts, prints the banner with every URL, and Ctrl-C stops everything", { timeout: 90_000 }, async () => {
    const dir = tempDir();
    dirs.push(dir);
    const p = await ports();
    const r = run(["up", "--data-dir", dir.path, "--homeserver-port", String(p.hs), "--identity-port", String(p.is), "--mail-port", String(p.mail), "--mail-ui-port", String(p.ui)]);
    procs.push(r.proc);
    await waitFor(() => r.output().includes("Ctrl-C stops everything") || r.proc.exitCode !== null, { timeoutMs: 60_000, what: "the banner" });
    const out = r.output();
    assert.match(out, new RegExp(`http://127\\.0\\.0\\.1:${p.hs}`));
    assert.match(out, new RegExp(`http://127\\.0\\.0\\.1:${p.is}`));
    assert.match(out, new RegExp(`http://127\\.0\\.0\\.1:${p.ui}`));
    assert.match(out, new RegExp(`server name localhost:${p.hs}`));
    assert.doesNotMatch(out, /^\s+at .*\(.*:\d+:\d+\)$/m, "no stack trace");
    const available = await Promise.all([loadServerModule("homeserver"), loadServerModule("identity-server")]);
    if (available.every((m) => m.runCli)) assert.doesNotMatch(out, /NOT RUNNING/, "both servers exist, so both run");
    // The catcher answers whatever else happened.
    const page = await fetch(`http://127.0.0.1:${p.ui}/`);
    assert.equal(page.status, 200);
    assert.ok(existsSync(join(dir.path, "homeserver.yaml")));
    assert.ok(existsSync(join(dir.path, "identity-server.yaml")));
    assert.equal(JSON.parse(readFileSync(join(dir.path, "beckon-state.json"), "utf8")).homeserver_server_name, `localhost:${p.hs}`);
    r.proc.kill("SIGINT");
    await Promise.race([r.exited, new Promise((_, rej) => setTimeout(() => rej(new Error("beckon up did not stop in 20 s")), 20_000))]);
    assert.match(r.output(), /beckon up: stopped\./);
    for (const port of [p.hs, p.is, p.mail, p.ui]) assert.equal(await portIsFree(port), true, `port ${port} released`);
  });

  it("refuses clearly when a port is taken", { timeout: 30_000 }, async () => {
    const dir = tempDir();
    dirs.push(dir);
    const p = await ports();
    const { createServer } = await import("node:net");
    const blocker = createServer();
    await new Promise<void>((res) => blocker.listen(p.hs, "127.0.0.1", () => res()));
    try {
      const r = run(["up", "--data-dir", dir.path, "--homeserver-port", String(p.hs), "--identity-port", String(p.is), "--mail-port", String(p.mail), "--mail-ui-port", String(p.ui)]);
      procs.push(r.proc);
      assert.equal(await r.exited, 1);
      assert.match(r.output(), new RegExp(`already in use: 127\\.0\\.0\\.1:${p.hs} \\(--homeserver-port\\)`));
    } finally {
      blocker.close();
    }
  });

  it("usage errors are one sentence and exit 2", { timeout: 30_000 }, async () => {
    const r = run(["up", "--homeserver-port", "nope"]);
    procs.push(r.proc);
    assert.equal(await r.exited, 2);
    assert.match(r.output(), /--homeserver-port must be a port number/);
    const u = run(["frobnicate"]);
    procs.push(u.proc);
    assert.equal(await u.exited, 2);
    assert.match(u.output(), /unknown command "frobnicate"/);
  });

  it("the servers stop by themselves when beckon up is SIGKILLed", { timeout: 90_000 }, async () => {
    const dir = tempDir();
    dirs.push(dir);
    const p = await ports();
    const r = run(["up", "--data-dir", dir.path, "--homeserver-port", String(p.hs), "--identity-port", String(p.is), "--mail-port", String(p.mail), "--mail-ui-port", String(p.ui)]);
    procs.push(r.proc);
    await waitFor(() => r.output().includes("Ctrl-C stops everything") || r.proc.exitCode !== null, { timeoutMs: 60_000, what: "the banner" });
    // The children of this `beckon up` (started by this test), found by parent pid.
    const kids = execFileSync("pgrep", ["-P", String(r.proc.pid)], { encoding: "utf8" }).split("\n").filter(Boolean).map(Number);
    assert.ok(kids.length >= 1);
    r.proc.kill("SIGKILL");
    await r.exited;
    // Not just the ports: the processes must end (a server whose log pipe broke used to spin on EPIPE).
    await waitFor(() => kids.every((pid) => !pidAlive(pid)), { timeoutMs: 20_000, what: "the orphaned servers to exit" });
    for (const port of [p.hs, p.is]) assert.equal(await portIsFree(port), true);
  });

  it("says clearly when a server dies, and stops the rest", { timeout: 90_000 }, async (t) => {
    const hsModule = await loadServerModule("homeserver");
    if (!hsModule.runCli) {
      t.skip(`no homeserver: ${hsModule.missing ?? ""}`);
      return;
    }
    const dir = tempDir();
    dirs.push(dir);
    const p = await ports();
    const r = run(["up", "--data-dir", dir.path, "--homeserver-port", String(p.hs), "--identity-port", String(p.is), "--mail-port", String(p.mail), "--mail-ui-port", String(p.ui)]);
    procs.push(r.proc);
    await waitFor(() => r.output().includes("Ctrl-C stops everything") || r.proc.exitCode !== null, { timeoutMs: 60_000, what: "the banner" });
    // The children of this `beckon up` (started by this test), found by parent pid; the homeserver by its command line.
    const kids = execFileSync("pgrep", ["-P", String(r.proc.pid)], { encoding: "utf8" }).split("\n").filter(Boolean).map(Number);
    const hs = kids.find((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("\0homeserver\0"));
    assert.ok(hs, "the homeserver child process");
    process.kill(hs, "SIGKILL");
    assert.equal(await r.exited, 1);
    assert.match(r.output(), /the homeserver stopped unexpectedly \(killed by SIGKILL\)/);
    for (const port of [p.is, p.mail, p.ui]) assert.equal(await portIsFree(port), true, `port ${port} released`);
  });
});
