/**
 * One server of `beckon up` as a child process (`node bin.js homeserver --config …`): its own
 * event loop, killable on its own. Its JSON log lines go to a file in the data dir; warnings
 * and errors (everything with --verbose) are also printed, prefixed with the server's name.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { dirname } from "node:path";
import { createInterface } from "node:readline";

export interface ChildOptions {
  /** `homeserver` or `identity-server` (the bin's subcommand). */
  command: string;
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

export function startChild(opts: ChildOptions): ServerChild {
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const log: WriteStream = createWriteStream(opts.logFile, { flags: "a" });
  const child = spawn(process.execPath, [opts.binPath, opts.command, ...opts.args], {
    // Its own process group: a Ctrl-C reaches only `beckon up`, which stops the children in order.
    detached: true,
    // The IPC channel lets the child notice when `beckon up` itself dies (and stop too).
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    env: { ...(opts.env ?? process.env), BECKON_SUPERVISED: "1" },
  });
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.once("error", (e) => {
      opts.print(`[${opts.title}] could not start: ${e.message}`);
      done = true;
      resolve({ code: 1, signal: null });
    });
  });
  const pipe = (stream: NodeJS.ReadableStream | null, isErr: boolean) => {
    if (!stream) return;
    const rl = createInterface({ input: stream });
    rl.on("line", (line) => {
      log.write(line + "\n");
      const shown = isErr ? (line.trim() ? `[${opts.title}] ${line}` : undefined) : formatLogLine(opts.title, line, opts.verbose);
      if (shown !== undefined) opts.print(shown);
    });
  };
  pipe(child.stdout, false);
  pipe(child.stderr, true);
  void exited.then(() => log.end());
  return {
    title: opts.title,
    process: child,
    pid: child.pid,
    exited,
    hasExited: () => done,
    async stop(graceMs = 10_000) {
      if (done) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => {
        if (!done) {
          opts.print(`[${opts.title}] did not stop within ${Math.round(graceMs / 1000)} s; killing it`);
          child.kill("SIGKILL");
        }
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
