/**
 * The composition root: reads the configuration (file + `BECKON_IS_*` environment), builds the
 * identity server, listens, starts the workers and shuts down gracefully on SIGINT/SIGTERM.
 * The only place that reads `process.env`.
 */
import { createLifecycle, createLogger } from "@beckon/server-kit";
import { loadIdentityServerConfig, type IdentityServerConfig } from "./config.js";
import { createIdentityServer, type IdentityServer } from "./app.js";

export interface RunIdentityServerOptions {
  /** YAML config file (default: `$BECKON_IS_CONFIG`, else none: env and defaults only). */
  configFile?: string;
  /** Extra settings over file and env (CLI flags). */
  overrides?: object;
  /** Environment to read (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** Install SIGINT/SIGTERM handlers (default true). */
  handleSignals?: boolean;
}

export async function runIdentityServer(options: RunIdentityServerOptions = {}): Promise<{ server: IdentityServer; config: IdentityServerConfig; url: string }> {
  const env = options.env ?? process.env;
  const file = options.configFile ?? env.BECKON_IS_CONFIG;
  const config = loadIdentityServerConfig({ ...(file ? { file } : {}), env, ...(options.overrides ? { overrides: options.overrides } : {}) });
  const logger = createLogger({ level: config.log_level, name: "beckon-is" });
  const server = await createIdentityServer({ config, logger });
  const life = createLifecycle({ logger });
  life.addCloser("identity server", () => server.stop());
  const { url } = await server.start();
  if (options.handleSignals !== false) life.installSignalHandlers();
  return { server, config, url };
}
