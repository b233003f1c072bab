/**
 * Runs an identity server in a child process for crash tests: argv[2] is a JSON object of
 * config overrides (as in YAML). Prints `READY <url>` once listening.
 */
import { createLogger } from "@beckon/server-kit";
import { loadIdentityServerConfig } from "../config.js";
import { createIdentityServer } from "../app.js";
import { RecordingMail } from "./harness.js";

const overrides = JSON.parse(process.argv[2] ?? "{}") as object;
const config = loadIdentityServerConfig({ env: {}, overrides });
const server = await createIdentityServer({ config, logger: createLogger({ level: "silent" }), mail: new RecordingMail() });
const { url } = await server.start({ host: "127.0.0.1", port: 0 });
process.stdout.write(`READY ${url}\n`);
process.on("SIGTERM", () => {
  void server.stop().then(() => process.exit(0));
});
