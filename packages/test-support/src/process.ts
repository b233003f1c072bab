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
