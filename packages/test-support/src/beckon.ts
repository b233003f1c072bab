/**
 * Beckon's servers as tests run them: the `beckon` CLI (packages/cli, built) as child processes
 * logging to files, their configs written by `beckon up --configs-only` with test settings
 * merged in.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { distinctFreePorts } from "./ports.js";
import { createTempDatabase, type TempDatabase } from "./postgres.js";
import { httpAnswers, spawnLogged, type LoggedProcess } from "./process.js";
import { startSmtpReceiver, type SmtpReceiver } from "./smtp.js";
import { tempDir } from "./temp.js";
import { waitFor } from "./wait.js";

export type Engine = "sqlite" | "postgres";
export type BeckonServer = "homeserver" | "identity-server";

const BECKON_BIN = fileURLToPath(new URL("../../cli/dist/bin.js", import.meta.url));

/** `node <beckon bin> …args`, output appended to `logFile`. */
export function spawnBeckon(name: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = {}): LoggedProcess {
  return spawnLogged(name, BECKON_BIN, args, logFile, env);
}

export interface BeckonStackArgs {
  dir: string;
  hsPort: number;
  isPort: number;
  smtpUrl: string;
  databaseUrl?: string | undefined;
}

/** The `beckon up` flags that place a stack: data dir, ports, SMTP server and database. */
export function beckonUpArgs(o: BeckonStackArgs): string[] {
  return [
    "--data-dir",
    o.dir,
    "--homeserver-port",
    String(o.hsPort),
    "--identity-port",
    String(o.isPort),
    "--smtp-url",
    o.smtpUrl,
    ...(o.databaseUrl ? ["--database-url", o.databaseUrl] : []),
  ];
}

/**
 * Writes `homeserver.yaml` and `identity-server.yaml` into `o.dir` with `beckon up --configs-only`,
 * `homeserver` / `identityServer` settings merged in (through a `beckon.yaml`). Throws with the
 * CLI's output when it fails.
 */
export async function generateBeckonConfigs(o: BeckonStackArgs & { homeserver?: Record<string, unknown>; identityServer?: Record<string, unknown> }): Promise<void> {
  const args = ["up", "--configs-only", ...beckonUpArgs(o)];
  if (o.homeserver || o.identityServer) {
    const beckonYaml = `${o.dir}/beckon.yaml`;
    writeFileSync(beckonYaml, JSON.stringify({ homeserver: o.homeserver ?? {}, identity_server: o.identityServer ?? {} }));
    args.push("--config", beckonYaml);
  }
  const gen = spawnBeckon("configs", args, `${o.dir}/configs.out`);
  const r = await gen.exited;
  if (r.code !== 0) throw new Error(`beckon up --configs-only failed:\n${gen.output()}`);
}

export interface PreparedStack {
  /** The data directory holding the generated configs (and the servers' logs). */
  dir: string;
  smtp: SmtpReceiver;
  hsPort: number;
  isPort: number;
  hsUrl: string;
  isUrl: string;
  /** `localhost:<port>`: the servers' names. */
  hsName: string;
  isName: string;
  /** Closes the SMTP receiver, drops the database and removes the directory (stop the servers first). */
  dispose(): Promise<void>;
}

/**
 * Everything a server pair needs before it starts: a temp directory, an SMTP receiver, a fresh
 * PostgreSQL database for `engine: "postgres"` (unless `databaseUrl` names one), two ports, and
 * the generated configs with `homeserver` / `identityServer` merged in.
 */
export async function prepareBeckonStack(o: {
  prefix: string;
  engine: Engine;
  databaseUrl?: string | undefined;
  homeserver?: Record<string, unknown>;
  identityServer?: Record<string, unknown>;
}): Promise<PreparedStack> {
  const dir = tempDir(`${o.prefix}-`);
  const smtp = await startSmtpReceiver();
  let db: TempDatabase | undefined;
  const dispose = async () => {
    await smtp.close();
    await db?.drop().catch(() => {});
    dir.cleanup();
  };
  try {
    if (o.engine === "postgres" && !o.databaseUrl) db = await createTempDatabase(o.prefix.replace(/\W/g, "_"));
    const [hsPort, isPort] = (await distinctFreePorts(2)) as [number, number];
    await generateBeckonConfigs({
      dir: dir.path,
      hsPort,
      isPort,
      smtpUrl: smtp.url,
      databaseUrl: o.databaseUrl ?? db?.url,
      ...(o.homeserver ? { homeserver: o.homeserver } : {}),
      ...(o.identityServer ? { identityServer: o.identityServer } : {}),
    });
    return {
      dir: dir.path,
      smtp,
      hsPort,
      isPort,
      hsUrl: `http://127.0.0.1:${hsPort}`,
      isUrl: `http://127.0.0.1:${isPort}`,
      hsName: `localhost:${hsPort}`,
      isName: `localhost:${isPort}`,
      dispose,
    };
  } catch (e) {
    await dispose();
    throw e;
  }
}

/** `beckon <which> --config <dir>/<which>.yaml`, logging to `<dir>/<which>.out`. */
export function spawnBeckonServer(which: BeckonServer, dir: string): LoggedProcess {
  return spawnBeckon(which, [which, "--config", `${dir}/${which}.yaml`], `${dir}/${which}.out`);
}

/** The URL that answers once `which` (at `baseUrl`) is up and routing. */
export function readinessUrl(which: BeckonServer, baseUrl: string): string {
  return which === "homeserver" ? `${baseUrl}/_matrix/client/versions` : `${baseUrl}/_matrix/identity/versions`;
}

/** Waits until `url` answers; throws with `p`'s output if it exits first. */
export async function waitUntilServing(url: string, p: LoggedProcess | undefined, what: string, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<void> {
  await waitFor(async () => (await httpAnswers(url)) || (p !== undefined && !p.alive()), { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: opts.intervalMs ?? 100, what });
  if (p && !p.alive()) throw new Error(`${what}: the process exited:\n${p.output()}`);
}
