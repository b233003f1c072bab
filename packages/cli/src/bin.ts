#!/usr/bin/env node
/**
 * The `beckon` command line: `up` (the development stack), `homeserver` / `identity-server`
 * (production servers), `generate-config`, `keygen`, `invite`. Errors are printed as one
 * sentence with the usage, never as a stack trace.
 */
// Each command loads only its own modules: a server process started as `beckon homeserver`
// or `beckon identity-server` must not carry `beckon up`'s mail catcher (smtp-server,
// mailparser) or the client SDK — ~15 MB of RSS in an identity server measured here.
const commands = () => import("./commands.js");
const out = (line: string): void => void process.stdout.write(line + "\n");
const err = (line: string): void => void process.stderr.write(line + "\n");

const USAGE = `usage: beckon <command> [options]

Commands:
  up                  run the homeserver, identity server and a mail catcher for development
                      (npm start runs this; see beckon up --help)
  homeserver          run the homeserver:       beckon homeserver --config homeserver.yaml
  identity-server     run the identity server:  beckon identity-server --config identity-server.yaml
  generate-config     write commented sample configs for both servers
  keygen              print a fresh ed25519 signing key
  invite              invite an email address to a room (uses the client SDK)
  help                this text

Run "beckon <command> --help" for a command's options.`;

/** When `beckon up` runs this process as a child: stop when `beckon up` goes away. */
function superviseByParent(): void {
  if (!process.send || process.env.BECKON_SUPERVISED !== "1") return;
  process.channel?.unref();
  process.once("disconnect", () => {
    // The parent died without stopping us. Our stdout/stderr pipes died with it: ignore their
    // write errors, shut down gracefully (the server's own SIGTERM handler), and make sure the
    // process ends even if a write to a dead pipe keeps the shutdown from finishing.
    process.stdout.on("error", () => {});
    process.stderr.on("error", () => {});
    setTimeout(() => process.exit(1), 10_000).unref();
    process.kill(process.pid, "SIGTERM");
  });
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "up":
      return (await import("./up.js")).runUp(rest);
    case "homeserver":
    case "identity-server": {
      superviseByParent();
      const code = await (await commands()).runServerCommand(command, rest);
      // 0 with a listening server: keep running until a signal; anything else: exit now.
      return code;
    }
    case "generate-config":
      return (await commands()).runGenerateConfig(rest);
    case "keygen":
      return (await commands()).runKeygen(rest);
    case "invite":
      return (await commands()).runInvite(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      out(USAGE);
      return command === undefined ? 2 : 0;
    default:
      err(`beckon: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exit(code);
    // 0: leave the event loop running (a server keeps listening; other commands just end).
  },
  (e: unknown) => {
    const message = e instanceof Error ? e.message : String(e);
    const isUsage = e instanceof Error && (e as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS");
    err(`beckon: ${message}${isUsage ? '\nRun "beckon help" for usage.' : ""}`);
    if (process.env.BECKON_DEBUG) console.error(e);
    process.exit(isUsage ? 2 : 1);
  },
);
