/**
 * The composition root: reads the configuration (file + `BECKON_HS_*` environment + CLI
 * overrides), builds the homeserver, listens, shuts down gracefully on SIGINT/SIGTERM.
 * The only place that reads `process.env`.
 */
import { createLifecycle, createLogger } from "@beckon/server-kit";
import { createHomeserver, type Homeserver } from "./app.js";
import { loadHomeserverConfig, type HomeserverConfig } from "./config.js";

export interface RunHomeserverOptions {
  /** YAML config file (default `$BECKON_HS_CONFIG`, else none: env and defaults only). */
  configFile?: string;
  /** Settings over file and env (CLI flags). */
  overrides?: object;
  /** Environment to read (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** Install SIGINT/SIGTERM handlers (default true). */
  handleSignals?: boolean;
}

export async function runHomeserver(options: RunHomeserverOptions = {}): Promise<{ server: Homeserver; config: HomeserverConfig; url: string }> {
  const env = options.env ?? process.env;
  const file = options.configFile ?? env.BECKON_HS_CONFIG;
  const config = loadHomeserverConfig({ ...(file ? { file } : {}), env, ...(options.overrides ? { overrides: options.overrides } : {}) });
  const logger = createLogger({ level: config.log_level, name: "beckon-hs" });
  const server = await createHomeserver({ config, logger });
  const life = createLifecycle({ logger });
  life.addCloser("homeserver", () => server.stop());
  const { url } = await server.start();
  if (options.handleSignals !== false) life.installSignalHandlers();
  return { server, config, url };
}
