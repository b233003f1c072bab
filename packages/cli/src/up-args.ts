/**
 * `beckon up`'s command line: flags, an optional `beckon.yaml`, and their validation into
 * {@link UpSettings}, with every mistake reported as a one-sentence {@link UsageError}.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";

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

