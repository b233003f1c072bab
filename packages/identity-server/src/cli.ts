/**
 * `beckon identity-server [options]` (the beckon CLI calls {@link runIdentityServerCli}).
 *
 *   --config <file>       YAML config (default $BECKON_IS_CONFIG)
 *   --listen <host:port>  override `listen`
 *   --check-config        validate the configuration and exit
 *   rotate-pepper         set a new lookup pepper and rehash all associations, then exit
 */
import { ConfigError, createLogger, inTransaction, openDatabase, runMigrations } from "@beckon/server-kit";
import { randomBytes } from "node:crypto";
import { loadIdentityServerConfig } from "./config.js";
import { runIdentityServer } from "./main.js";
import { createStores, IS_MIGRATIONS_TABLE, storageMigrations, type IsDatabase, type Stores } from "./storage/index.js";
import { rotatePepper } from "./domain/lookup.js";
import { mailMigrations } from "./mail/index.js";

const USAGE = `usage: beckon identity-server [--config <file>] [--listen <host:port>] [--check-config] [rotate-pepper]`;

/** Runs the CLI; resolves to an exit code (the server keeps running for the plain form: resolves 0 once listening). */
export async function runIdentityServerCli(args: readonly string[], io: { out?: (s: string) => void; err?: (s: string) => void } = {}): Promise<number> {
  const out = io.out ?? ((s: string) => process.stdout.write(s + "\n"));
  const err = io.err ?? ((s: string) => process.stderr.write(s + "\n"));
  let configFile: string | undefined;
  let listen: string | undefined;
  let check = false;
  let command: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--config" || a === "-c") configFile = args[++i];
    else if (a?.startsWith("--config=")) configFile = a.slice(9);
    else if (a === "--listen") listen = args[++i];
    else if (a === "--check-config") check = true;
    else if (a === "--help" || a === "-h") {
      out(USAGE);
      return 0;
    } else if (a === "rotate-pepper" && command === undefined) command = a;
    else {
      err(`unknown argument ${a}\n${USAGE}`);
      return 2;
    }
  }
  const overrides = listen ? { listen } : undefined;
  try {
    if (check) {
      loadIdentityServerConfig({ ...(configFile ? { file: configFile } : {}), env: process.env, ...(overrides ? { overrides } : {}) });
      out("configuration OK");
      return 0;
    }
    if (command === "rotate-pepper") {
      const config = loadIdentityServerConfig({ ...(configFile ? { file: configFile } : {}), env: process.env });
      const logger = createLogger({ level: config.log_level, name: "beckon-is" });
      const db = await openDatabase<IsDatabase>({ url: config.database_url, ...(config.database_schema ? { schema: config.database_schema } : {}) });
      try {
        await runMigrations(db, [...storageMigrations, ...mailMigrations], IS_MIGRATIONS_TABLE);
        const pepper = await rotatePepper({
          transact: <T>(fn: (s: Stores) => Promise<T>) => inTransaction(db.db, (trx) => fn(createStores(trx, db.engine))),
          randomBytes: (n) => new Uint8Array(randomBytes(n)),
          logger,
        });
        out(`lookup pepper rotated (${pepper.length} characters); remove any fixed \`pepper\` from the config`);
      } finally {
        await db.close();
      }
      return 0;
    }
    await runIdentityServer({ ...(configFile ? { configFile } : {}), ...(overrides ? { overrides } : {}) });
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      err(e.message);
      return 2;
    }
    err(`identity server failed: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}
