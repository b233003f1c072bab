/**
 * `beckon homeserver [options]` (the beckon CLI calls {@link runHomeserverCli}).
 *
 *   --config <file>        YAML config (default $BECKON_HS_CONFIG)
 *   --listen <host:port>   override `listen`
 *   --server-name <name>   override `server_name`
 *   --check-config         validate the configuration and exit
 *   rebuild-state          recompute every room's current state from its events, then exit
 */
import { ConfigError } from "@beckon/server-kit";
import { createHomeserver } from "./app.js";
import { loadHomeserverConfig } from "./config.js";
import { runHomeserver } from "./main.js";

const USAGE = "usage: beckon homeserver [--config <file>] [--listen <host:port>] [--server-name <name>] [--check-config] [rebuild-state]";

/** Runs the CLI; resolves to an exit code (for the plain form: 0 once listening; the server keeps running). */
export async function runHomeserverCli(args: readonly string[], io: { out?: (s: string) => void; err?: (s: string) => void } = {}): Promise<number> {
  const out = io.out ?? ((s: string) => process.stdout.write(s + "\n"));
  const err = io.err ?? ((s: string) => process.stderr.write(s + "\n"));
  let configFile: string | undefined;
  const overrides: Record<string, unknown> = {};
  let check = false;
  let command: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--config" || a === "-c") configFile = args[++i];
    else if (a?.startsWith("--config=")) configFile = a.slice("--config=".length);
    else if (a === "--listen") overrides.listen = args[++i];
    else if (a === "--server-name") overrides.server_name = args[++i];
    else if (a === "--check-config") check = true;
    else if (a === "--help" || a === "-h") {
      out(USAGE);
      return 0;
    } else if (a === "rebuild-state" && command === undefined) command = a;
    else {
      err(`unknown argument ${a}\n${USAGE}`);
      return 2;
    }
  }
  try {
    const load = () => loadHomeserverConfig({ ...(configFile ? { file: configFile } : {}), env: process.env, overrides });
    if (check) {
      load();
      out("configuration OK");
      return 0;
    }
    if (command === "rebuild-state") {
      const hs = await createHomeserver({ config: { ...load(), log_level: "warn" } });
      try {
        await hs.rebuildProjections();
      } finally {
        await hs.stop();
      }
      out("room state rebuilt from the event log");
      return 0;
    }
    const { url } = await runHomeserver({ ...(configFile ? { configFile } : {}), overrides });
    out(`homeserver listening on ${url}`);
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      err(e.message);
      return 2;
    }
    throw e;
  }
}
