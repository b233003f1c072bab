/**
 * One server of `beckon up` as a child process (`node bin.js homeserver --config …`): its own
 * event loop, killable on its own. Its stdout and stderr go straight to a log file in the data
 * dir (not through a pipe: a pipe would break if `beckon up` died, and the server's logger then
 * spins on EPIPE); `beckon up` follows the file and prints warnings, errors and plain lines
 * (everything with --verbose), prefixed with the server's name.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, fstatSync, mkdirSync, openSync, readSync } from "node:fs";
import { dirname } from "node:path";
// The subpath alone: the supervisor must not load the servers' modules (Fastify, Kysely…).
import { serverProcessSettings } from "@beckon/server-kit/process-settings";

export interface ChildOptions {
  /** `homeserver` or `identity-server` (the bin's subcommand). */
  command: "homeserver" | "identity-server";
  /** For messages: "homeserver", "identity server". */
  title: string;
  binPath: string;
  args: string[];
  logFile: string;
  verbose: boolean;
  print: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

export interface ServerChild {
  readonly title: string;
  readonly process: ChildProcess;
  readonly pid: number | undefined;
  /** Resolves when the process has exited (code or signal). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Whether it has exited. */
  hasExited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  stop(graceMs?: number): Promise<void>;
}

const LEVELS: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };

/** One printed line for a pino JSON log line (or undefined when it is below the shown level). */
export function formatLogLine(title: string, line: string, verbose: boolean): string | undefined {
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    return line.trim() ? `[${title}] ${line}` : undefined;
  }
  if (typeof rec !== "object" || rec === null || typeof (rec as { level?: unknown }).level !== "number") return `[${title}] ${line}`;
  const r = rec as { level: number; msg?: unknown; err?: { message?: unknown } };
  if (r.level < 40 && !verbose) return undefined;
  const level = LEVELS[r.level] ?? String(r.level);
  const err = r.err && typeof r.err.message === "string" ? ` (${r.err.message})` : "";
  return `[${title}] ${level} ${typeof r.msg === "string" ? r.msg : ""}${err}`;
}

/** Follows a growing file from its current end; `poll()` hands complete new lines to `onLine`. */
function followFile(file: string, onLine: (line: string) => void): { poll(): void; close(): void } {
  const fd = openSync(file, "r");
  let offset = fstatSync(fd).size;
  let partial = "";
  const buf = Buffer.alloc(64 * 1024);
  return {
    poll() {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, offset);
        if (n <= 0) break;
        offset += n;
        const lines = (partial + buf.subarray(0, n).toString("utf8")).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) onLine(line);
      }
    },
    close() {
      if (partial) onLine(partial);
      partial = "";
      closeSync(fd);
    },
  };
}

export function startChild(opts: ChildOptions): ServerChild {
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const out = openSync(opts.logFile, "a");
  const follower = followFile(opts.logFile, (line) => {
    const shown = formatLogLine(opts.title, line, opts.verbose);
    if (shown !== undefined) opts.print(shown);
  });
  let child: ChildProcess;
  try {
    // Young-generation size and malloc settings per server (server-kit process-settings.ts).
    const env = opts.env ?? process.env;
    const settings = serverProcessSettings(opts.command, env);
    child = spawn(process.execPath, [...settings.nodeFlags, opts.binPath, opts.command, ...opts.args], {
      // Its own process group: a Ctrl-C reaches only `beckon up`, which stops the children in order.
      detached: true,
      // The IPC channel lets the child notice when `beckon up` itself dies (and stop too).
      stdio: ["ignore", out, out, "ipc"],
      env: { ...settings.env, ...env, BECKON_SUPERVISED: "1" },
    });
  } finally {
    closeSync(out);
  }
  const timer = setInterval(() => follower.poll(), 100);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    const finish = (r: { code: number | null; signal: NodeJS.Signals | null }) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      follower.poll();
      follower.close();
      resolve(r);
    };
    child.once("exit", (code, signal) => finish({ code, signal }));
    child.once("error", (e) => {
      opts.print(`[${opts.title}] could not start: ${e.message}`);
      finish({ code: 1, signal: null });
    });
  });
  return {
    title: opts.title,
    process: child,
    pid: child.pid,
    exited,
    hasExited: () => done,
    async stop(graceMs = 10_000) {
      if (done) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => {
        if (!done) {
          opts.print(`[${opts.title}] did not stop within ${Math.round(graceMs / 1000)} s; killing it`);
          child.kill("SIGKILL");
        }
      }, graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}
