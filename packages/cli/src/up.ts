/**
 * `beckon up`: the whole development stack on one machine — the homeserver, the identity
 * server (each a child process) and the development mail catcher — configured to trust each
 * other by explicit mapping (DECISIONS.md "`beckon up` on any ports"), with a banner telling
 * a newcomer how to try an email invite. Ctrl-C stops the children first, then the catcher.
 */
import { createServer } from "node:net";
import { readFileSync, writeFileSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { startChild, type ServerChild } from "./child.js";
import {
  HOMESERVER_CONFIG_FILE,
  IDENTITY_SERVER_CONFIG_FILE,
  MAIL_STORE_FILE,
  devHomeserverConfig,
  devIdentityServerConfig,
  loadOrCreateState,
  type DevOptions,
} from "./dev-configs.js";
import { startMailCatcher, type MailCatcher } from "./mail-catcher.js";
import { configProblems, loadServerModule, pruneToShape, type ServerModule } from "./servers.js";

export const UP_USAGE = `usage: beckon up [options]

Runs the homeserver, the identity server and a development mail catcher on 127.0.0.1.

  --data-dir <dir>          where data, generated configs and logs live (default ./.beckon)
  --homeserver-port <n>     homeserver port (default 8008; server name localhost:<n> on first start)
  --identity-port <n>       identity server port (default 8090)
  --mail-port <n>           mail catcher SMTP port (default 2525)
  --mail-ui-port <n>        mail catcher web page port (default 8025)
  --smtp-url <url>          send mail to this SMTP relay instead of the catcher (smtp:// or smtps://)
  --database-url <url>      run both servers on PostgreSQL (schemas beckon_hs and beckon_is)
  --config <file>           beckon.yaml with the settings above (snake_case) and optional
                            \`homeserver:\` / \`identity_server:\` sections merged into the server configs
  --startup-timeout <s>     how long to wait for the servers to answer (default 60)
  --configs-only            write the generated server configs to the data dir and exit
  --verbose                 print the servers' info logs too (they are always in <data-dir>/logs/)
  -h, --help                this text`;

export interface UpSettings {
  dataDir: string;
  homeserverPort: number;
  identityPort: number;
  mailPort: number;
  mailUiPort: number;
  smtpUrl?: string;
  databaseUrl?: string;
  homeserverExtra?: Record<string, unknown>;
  identityServerExtra?: Record<string, unknown>;
  startupTimeoutMs: number;
  configsOnly: boolean;
  verbose: boolean;
}

/** A usage problem: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function port(name: string, raw: unknown): number {
  const n = typeof raw === "string" && /^\d+$/.test(raw.trim()) ? Number(raw) : raw;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`${name} must be a port number 1-65535 (got ${JSON.stringify(raw)})`);
  return n;
}

function smtpUrl(name: string, raw: unknown): string {
  if (typeof raw !== "string") throw new UsageError(`${name} must be a URL`);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`${name} must be an smtp:// or smtps:// URL (got "${raw}")`);
  }
  if (u.protocol !== "smtp:" && u.protocol !== "smtps:") throw new UsageError(`${name} must be an smtp:// or smtps:// URL (got "${raw}")`);
  return raw;
}

function databaseUrl(name: string, raw: unknown): string {
  if (typeof raw !== "string" || !/^postgres(ql)?:\/\//.test(raw)) throw new UsageError(`${name} must be a postgres:// URL (SQLite is the default and needs no flag)`);
  return raw;
}

const FILE_KEYS = [
  "data_dir",
  "homeserver_port",
  "identity_port",
  "mail_port",
  "mail_ui_port",
  "smtp_url",
  "database_url",
  "homeserver",
  "identity_server",
  "startup_timeout",
] as const;

/** Reads beckon.yaml (every problem at once). */
function readBeckonYaml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true });
  } catch (e) {
    throw new UsageError(`${file} is not valid YAML: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isRecord(doc)) throw new UsageError(`${file}: the top level must be a mapping`);
  const unknown = Object.keys(doc).filter((k) => !(FILE_KEYS as readonly string[]).includes(k));
  if (unknown.length) throw new UsageError(`${file}: unknown setting(s) ${unknown.join(", ")} (known: ${FILE_KEYS.join(", ")})`);
  for (const k of ["homeserver", "identity_server"] as const) {
    if (doc[k] !== undefined && !isRecord(doc[k])) throw new UsageError(`${file}: ${k} must be a mapping of server settings`);
  }
  return doc;
}

/** Flags over beckon.yaml over defaults. */
export function parseUpArgs(argv: readonly string[], cwd = process.cwd()): UpSettings | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        "data-dir": { type: "string" },
        "homeserver-port": { type: "string" },
        "identity-port": { type: "string" },
        "mail-port": { type: "string" },
        "mail-ui-port": { type: "string" },
        "smtp-url": { type: "string" },
        "database-url": { type: "string" },
        config: { type: "string" },
        "startup-timeout": { type: "string" },
        "configs-only": { type: "boolean" },
        verbose: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const f = parsed.values;
  if (f.help) return "help";
  const file = f.config !== undefined ? readBeckonYaml(resolve(cwd, f.config)) : {};
  const pick = (flag: string | undefined, key: string): unknown => (flag !== undefined ? flag : file[key]);
  const dataDirRaw = pick(f["data-dir"], "data_dir") ?? ".beckon";
  if (typeof dataDirRaw !== "string" || dataDirRaw === "") throw new UsageError("data_dir must be a path");
  const settings: UpSettings = {
    dataDir: resolve(cwd, dataDirRaw),
    homeserverPort: port("--homeserver-port", pick(f["homeserver-port"], "homeserver_port") ?? 8008),
    identityPort: port("--identity-port", pick(f["identity-port"], "identity_port") ?? 8090),
    mailPort: port("--mail-port", pick(f["mail-port"], "mail_port") ?? 2525),
    mailUiPort: port("--mail-ui-port", pick(f["mail-ui-port"], "mail_ui_port") ?? 8025),
    startupTimeoutMs: 60_000,
    configsOnly: f["configs-only"] === true,
    verbose: f.verbose === true,
  };
  const timeout = pick(f["startup-timeout"], "startup_timeout");
  if (timeout !== undefined) {
    const s = Number(timeout);
    if (!Number.isFinite(s) || s <= 0) throw new UsageError("--startup-timeout must be a number of seconds");
    settings.startupTimeoutMs = s * 1000;
  }
  const smtp = pick(f["smtp-url"], "smtp_url");
  if (smtp !== undefined) settings.smtpUrl = smtpUrl("--smtp-url", smtp);
  const db = pick(f["database-url"], "database_url");
  if (db !== undefined) settings.databaseUrl = databaseUrl("--database-url", db);
  if (isRecord(file.homeserver)) settings.homeserverExtra = file.homeserver;
  if (isRecord(file.identity_server)) settings.identityServerExtra = file.identity_server;
  const ports = [settings.homeserverPort, settings.identityPort, ...(settings.smtpUrl ? [] : [settings.mailPort, settings.mailUiPort])];
  if (new Set(ports).size !== ports.length) throw new UsageError(`the ports must differ (got ${ports.join(", ")})`);
  return settings;
}

/** Whether 127.0.0.1:port can be listened on right now. */
export function portIsFree(p: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolveFree) => {
    const srv = createServer();
    srv.once("error", () => resolveFree(false));
    srv.listen(p, host, () => srv.close(() => resolveFree(true)));
  });
}

interface Prepared {
  module: ServerModule;
  configFile: string;
  /** Problems that prevent starting it (missing package, invalid config). */
  problems: string[];
}

function writeServerConfig(module: ServerModule, file: string, config: Record<string, unknown>, print: (s: string) => void): Prepared {
  let final = config;
  if (module.shape) {
    const pruned = pruneToShape(config, module.shape);
    final = pruned.config;
    if (pruned.dropped.length) print(`note: this ${module.title} does not know ${pruned.dropped.join(", ")}; left out of ${file}`);
  }
  const header = [
    `# ${module.title} configuration generated by \`beckon up\` — rewritten on every start.`,
    `# To change a setting, put it under \`${module.kind === "homeserver" ? "homeserver" : "identity_server"}:\` in a beckon.yaml (beckon up --config beckon.yaml);`,
    `# \`beckon generate-config\` writes commented production samples.`,
    "",
  ].join("\n");
  writeFileSync(file, header + stringifyYaml(final));
  const problems: string[] = [];
  if (module.missing) problems.push(module.missing);
  else if (module.loadConfig) {
    try {
      module.loadConfig({ file, env: process.env });
    } catch (e) {
      problems.push(...configProblems(e));
    }
  }
  return { module, configFile: file, problems };
}

async function waitUntilAnswering(url: string, child: ServerChild, timeoutMs: number): Promise<"ready" | "exited" | "timeout"> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.hasExited()) return "exited";
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await r.arrayBuffer();
      if (r.status < 500) return "ready";
    } catch {
      /* not listening yet */
    }
    const wait = new Promise((r) => setTimeout(r, 100));
    await Promise.race([wait, child.exited]);
  }
  return child.hasExited() ? "exited" : "timeout";
}

export interface UpIo {
  print?: (line: string) => void;
  /** For tests: resolves to stop (as if Ctrl-C was pressed). */
  stopSignal?: Promise<void>;
  /** Install SIGINT/SIGTERM handlers (default true). */
  handleSignals?: boolean;
}

const HS_PROBE = "/_matrix/client/versions";
const IS_PROBE = "/_matrix/identity/versions";

/** Runs `beckon up`; resolves to the exit code once everything has stopped. */
export async function runUp(argv: readonly string[], io: UpIo = {}): Promise<number> {
  const print = io.print ?? ((line: string) => console.log(line));
  let settings: UpSettings | "help";
  try {
    settings = parseUpArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      print(`beckon up: ${e.message}\n\n${UP_USAGE}`);
      return 2;
    }
    throw e;
  }
  if (settings === "help") {
    print(UP_USAGE);
    return 0;
  }
  const s = settings;
  let state;
  try {
    state = loadOrCreateState(s.dataDir, s.homeserverPort, s.identityPort).state;
  } catch (e) {
    print(`beckon up: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  const catcherUsed = s.smtpUrl === undefined;
  const devOpts: DevOptions = {
    dataDir: s.dataDir,
    homeserverPort: s.homeserverPort,
    identityPort: s.identityPort,
    smtpUrl: s.smtpUrl ?? `smtp://127.0.0.1:${s.mailPort}`,
    ...(s.databaseUrl ? { databaseUrl: s.databaseUrl } : {}),
    ...(s.homeserverExtra ? { homeserverExtra: s.homeserverExtra } : {}),
    ...(s.identityServerExtra ? { identityServerExtra: s.identityServerExtra } : {}),
  };
  const [hsModule, isModule] = await Promise.all([loadServerModule("homeserver"), loadServerModule("identity-server")]);
  const hs = writeServerConfig(hsModule, join(s.dataDir, HOMESERVER_CONFIG_FILE), devHomeserverConfig(devOpts, state), print);
  const is = writeServerConfig(isModule, join(s.dataDir, IDENTITY_SERVER_CONFIG_FILE), devIdentityServerConfig(devOpts, state), print);
  if (s.configsOnly) {
    print(`wrote ${hs.configFile}`);
    print(`wrote ${is.configFile}`);
    for (const p of [hs, is]) for (const problem of p.problems) print(`warning (${p.module.title}): ${problem}`);
    return 0;
  }

  // Refuse early, and clearly, when a port is taken (another `beckon up`?).
  const wanted: [string, number][] = [
    ["--homeserver-port", s.homeserverPort],
    ["--identity-port", s.identityPort],
    ...(catcherUsed
      ? ([
          ["--mail-port", s.mailPort],
          ["--mail-ui-port", s.mailUiPort],
        ] as [string, number][])
      : []),
  ];
  const busy: string[] = [];
  for (const [flag, p] of wanted) if (!(await portIsFree(p))) busy.push(`127.0.0.1:${p} (${flag})`);
  if (busy.length) {
    print(`beckon up: already in use: ${busy.join(", ")}. Is another \`beckon up\` running? Stop it or pick other ports with the flags.`);
    return 1;
  }

  let catcher: MailCatcher | undefined;
  if (catcherUsed) {
    try {
      catcher = await startMailCatcher({ smtpPort: s.mailPort, webPort: s.mailUiPort, storeFile: join(s.dataDir, MAIL_STORE_FILE), print });
    } catch (e) {
      print(`beckon up: the mail catcher could not start: ${e instanceof Error ? e.message : String(e)}`);
      return 1;
    }
  }

  const binPath = fileURLToPath(new URL("./bin.js", import.meta.url));
  const children: { prepared: Prepared; child: ServerChild; url: string; probe: string }[] = [];
  const notRunning: string[] = [];
  for (const [prepared, p, probe] of [
    [is, s.identityPort, IS_PROBE],
    [hs, s.homeserverPort, HS_PROBE],
  ] as const) {
    if (prepared.problems.length) {
      notRunning.push(`${prepared.module.title}: NOT STARTED — ${prepared.problems.join("; ")}`);
      continue;
    }
    const child = startChild({
      command: prepared.module.kind,
      title: prepared.module.title,
      binPath,
      args: ["--config", prepared.configFile],
      logFile: join(s.dataDir, "logs", `${prepared.module.kind}.log`),
      verbose: s.verbose,
      print,
    });
    children.push({ prepared, child, url: `http://127.0.0.1:${p}`, probe });
  }

  let stopping = false;
  const stopAll = async (): Promise<void> => {
    stopping = true;
    await Promise.all(children.map((c) => c.child.stop()));
    await catcher?.close();
  };

  const readiness = await Promise.all(children.map(async (c) => ({ c, result: await waitUntilAnswering(c.url + c.probe, c.child, s.startupTimeoutMs) })));
  for (const { c, result } of readiness) {
    if (result === "ready") continue;
    if (result === "exited") {
      const { code, signal } = await c.child.exited;
      notRunning.push(`${c.prepared.module.title}: exited during start-up (${signal ?? `code ${code}`}); see the lines above and ${join(s.dataDir, "logs", `${c.prepared.module.kind}.log`)}`);
    } else {
      notRunning.push(`${c.prepared.module.title}: did not answer ${c.url}${c.probe} within ${s.startupTimeoutMs / 1000} s`);
    }
  }
  const running = readiness.filter((r) => r.result === "ready").map((r) => r.c);
  if (running.length === 0 && !catcher) {
    for (const line of notRunning) print(`beckon up: ${line}`);
    await stopAll();
    return 1;
  }

  print(
    banner({
      settings: s,
      hsName: state.homeserver_server_name,
      hsRunning: running.some((c) => c.prepared === hs),
      isRunning: running.some((c) => c.prepared === is),
      catcher,
      notRunning,
    }),
  );

  // Run until Ctrl-C / SIGTERM, the test's stop signal, or a server dying.
  let exitCode = notRunning.length ? 1 : 0;
  await new Promise<void>((resolveStop) => {
    const onSignal = (sig: string) => {
      print(`\nbeckon up: ${sig} received, stopping…`);
      resolveStop();
    };
    const onInt = () => onSignal("SIGINT");
    const onTerm = () => onSignal("SIGTERM");
    if (io.handleSignals !== false) {
      process.once("SIGINT", onInt);
      process.once("SIGTERM", onTerm);
    }
    void io.stopSignal?.then(() => resolveStop());
    for (const c of running) {
      void c.child.exited.then(({ code, signal }) => {
        if (stopping) return;
        print(
          `\nbeckon up: the ${c.prepared.module.title} stopped unexpectedly (${signal ? `killed by ${signal}` : `exit code ${code}`}). ` +
            `Its log: ${join(s.dataDir, "logs", `${c.prepared.module.kind}.log`)}. Stopping the rest.`,
        );
        exitCode = 1;
        resolveStop();
      });
    }
  }).finally(() => {
    stopping = true;
  });
  await stopAll();
  print("beckon up: stopped.");
  return exitCode;
}

/** How to run this CLI from the current directory (`npx beckon` needs a bin link that a fresh clone lacks). */
function beckonCommand(): string {
  const bin = fileURLToPath(new URL("./bin.js", import.meta.url));
  const rel = relative(process.cwd(), bin);
  return `node ${rel.startsWith("..") || isAbsolute(rel) ? bin : rel}`;
}

function banner(b: { settings: UpSettings; hsName: string; hsRunning: boolean; isRunning: boolean; catcher: MailCatcher | undefined; notRunning: string[] }): string {
  const s = b.settings;
  const hsUrl = `http://127.0.0.1:${s.homeserverPort}`;
  const isUrl = `http://127.0.0.1:${s.identityPort}`;
  const mailUi = b.catcher ? `http://127.0.0.1:${b.catcher.webPort}` : undefined;
  const lines = [
    "",
    "  Beckon is up.",
    "",
    `  Homeserver       ${hsUrl}   server name ${b.hsName}, open registration${b.hsRunning ? "" : "  (NOT RUNNING)"}`,
    `  Identity server  ${isUrl}   id_server localhost:${s.identityPort} or 127.0.0.1:${s.identityPort}${b.isRunning ? "" : "  (NOT RUNNING)"}`,
    b.catcher
      ? `  Mail catcher     ${mailUi}   SMTP 127.0.0.1:${b.catcher.smtpPort}; every mail is also printed here`
      : `  Mail             sent to ${s.smtpUrl ?? "?"} (no catcher)`,
    `  Data             ${s.dataDir}   ${s.databaseUrl ? "PostgreSQL (schemas beckon_hs, beckon_is)" : "SQLite"}; logs in ${join(s.dataDir, "logs")}`,
  ];
  if (b.notRunning.length) {
    lines.push("", "  Not running:");
    for (const n of b.notRunning) lines.push(`    - ${n}`);
  }
  const register = (user: string) =>
    `curl -s -X POST ${hsUrl}/_matrix/client/v3/register -H 'content-type: application/json' -d '{"username":"${user}","password":"correct horse","auth":{"type":"m.login.dummy"}}'`;
  lines.push(
    "",
    "  Try an email invite (in another terminal):",
    "    1. Register alice; note her access_token:",
    `       ${register("alice")}`,
    "    2. Create a room:",
    `       curl -s -X POST ${hsUrl}/_matrix/client/v3/createRoom -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"name":"Book club"}'`,
    "    3. Invite carol by email (looks the address up, then sends a third-party invite):",
    `       ${beckonCommand()} invite --homeserver ${hsUrl} --identity-server ${isUrl} --token "$TOKEN" '!ROOM_ID' carol@example.org`,
    `    4. ${mailUi ? `Open ${mailUi}` : "Look in the mailbox"}: carol's invitation names the room and alice, with a join link.`,
    "    5. Carol registers, validates her address (the link in the validation mail), binds it",
    "       via the homeserver, and finds the invite in her /sync.",
    `  Or use any Matrix client: homeserver ${hsUrl}, identity server ${isUrl}.`,
    "",
    "  Ctrl-C stops everything.",
    "",
  );
  return lines.join("\n");
}

