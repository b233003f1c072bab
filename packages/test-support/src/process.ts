import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";

/** A child process whose output goes to a log file. */
export interface LoggedProcess {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** What it wrote to its log since it was started. */
  output(): string;
}

/**
 * Runs `node <script> …args` with stdout and stderr appended to `logFile`. A file, not a pipe:
 * if the test runner dies, a server writing to a broken pipe would spin on EPIPE instead of exiting.
 */
export function spawnLogged(name: string, script: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = {}): LoggedProcess {
  const fd = openSync(logFile, "a");
  const start = fstatSync(fd).size;
  let proc: ChildProcess;
  try {
    proc = spawn(process.execPath, [script, ...args], { stdio: ["ignore", fd, fd], env: { ...process.env, ...env } });
  } finally {
    closeSync(fd);
  }
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => {
      done = true;
      resolve({ code, signal });
    }),
  );
  const output = () => {
    try {
      return readFileSync(logFile, "utf8").slice(start);
    } catch {
      return "";
    }
  };
  return { name, proc, exited, alive: () => !done, output };
}

/** True when `url` answers below 500 within a second (a server is up and routing). */
export async function httpAnswers(url: string): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await r.arrayBuffer();
    return r.status < 500;
  } catch {
    return false;
  }
}

/** Stops `p`: SIGTERM, then SIGKILL if it is still running after `graceMs`. */
export async function stopLogged(p: LoggedProcess, graceMs = 10_000): Promise<void> {
  if (!p.alive()) return;
  p.proc.kill("SIGTERM");
  const t = setTimeout(() => p.proc.kill("SIGKILL"), graceMs);
  await p.exited;
  clearTimeout(t);
}

/**
 * Runs `node …args` (stdout and stderr piped) and resolves once it prints `READY <url>`;
 * rejects, with what it wrote to stderr, if it exits first or is not ready within `timeoutMs`.
 */
export function spawnUntilReady(args: string[], timeoutMs = 30_000): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`child did not start in ${timeoutMs} ms: ${err}`)), timeoutMs);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /READY (\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited ${code}: ${err}`));
    });
  });
}
