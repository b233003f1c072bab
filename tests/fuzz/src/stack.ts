/**
 * The system under test for the fuzzer and the abuse tests: a real homeserver and a real
 * identity server on temporary SQLite files, each built through its public factory, listening on
 * 127.0.0.1 (they call each other: OpenID userinfo, server keys, store-invite, onbind) and driven
 * in-process through `app.inject()`. Mail goes to a recording transport (only committed mails
 * reach it: it sits behind the real outbox), logs to a capturing stream.
 */
import { Writable } from "node:stream";
import { join } from "node:path";
import { createLogger } from "@beckon/server-kit";
import { freePort, tempDir } from "@beckon/test-support";
import { createHomeserver, homeserverConfigFor, type Homeserver } from "@beckon/homeserver";
import { createIdentityServer, loadIdentityServerConfig, type CreateIdentityServerOptions, type IdentityServer } from "@beckon/identity-server";

export const HS_NAME = "hs.fuzz.test";
export const IS_NAME = "is.fuzz.test";

type MailTransport = NonNullable<CreateIdentityServerOptions["transport"]>;
export type SentMail = Parameters<MailTransport["send"]>[0];

/** Keeps every log line (bounded) so tests can grep them for secrets and unhandled errors. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  dropped = 0;
  constructor(private readonly max = 200_000) {
    super();
  }
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    for (const line of chunk.toString().split("\n")) {
      if (line === "") continue;
      if (this.lines.length < this.max) this.lines.push(line);
      else this.dropped++;
    }
    cb();
  }
  text(): string {
    return this.lines.join("\n");
  }
}

export interface StackOptions {
  /** Rate limits on both servers (default off: the fuzzer is not an abuse test). */
  rateLimits?: boolean;
  /** Extra config for each server (merged over the defaults, shallowly per top-level key). */
  hsOverrides?: Record<string, unknown>;
  isOverrides?: Record<string, unknown>;
  logLevel?: "trace" | "debug" | "info" | "warn" | "error";
}

export interface Stack {
  hs: Homeserver;
  is: IdentityServer;
  hsUrl: string;
  isUrl: string;
  mails: SentMail[];
  hsLogs: LogCapture;
  isLogs: LogCapture;
  close(): Promise<void>;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const dir = tempDir("beckon-fuzz-");
  const isPort = await freePort();
  const isUrl = `http://127.0.0.1:${isPort}`;
  const level = opts.logLevel ?? "info";
  const hsLogs = new LogCapture();
  const isLogs = new LogCapture();
  const limits = opts.rateLimits ?? false;

  const hsConfig = homeserverConfigFor({
    server_name: HS_NAME,
    database_url: `sqlite:${join(dir.path, "hs.db")}`,
    log_level: level,
    passwords: { scrypt_n: 1024 },
    registration: { enabled: true, shared_secret: "fuzz-shared-secret" },
    // only_mapped: a fuzzed id_server is refused before any DNS lookup (tests stay on loopback).
    identity_servers: { map: { [IS_NAME]: isUrl }, only_mapped: true },
    outbound: { allow_private: true, timeout: "5s" },
    rate_limits: { enabled: limits },
    ...(opts.hsOverrides ?? {}),
  });
  const hs = await createHomeserver({ config: hsConfig, logger: createLogger({ level, name: "hs", destination: hsLogs }) });
  let is: IdentityServer | undefined;
  try {
    const hsAddr = await hs.start({ host: "127.0.0.1", port: 0 });
    const mails: SentMail[] = [];
    const transport: MailTransport = {
      async send(m) {
        if (mails.length < 100_000) mails.push(m);
      },
    };
    const isConfig = loadIdentityServerConfig({
      env: {},
      overrides: {
        server_name: IS_NAME,
        public_base_url: isUrl,
        database_url: `sqlite:${join(dir.path, "is.db")}`,
        homeservers: { [HS_NAME]: hsAddr.url },
        // A fuzzed matrix_server_name is refused before any connection.
        homeserver_allow_list: [HS_NAME],
        outbound: { allow_private: true, timeout: "5s" },
        rate_limits: { enabled: limits },
        log_level: level,
        pepper: "matrixrocks",
        ...(opts.isOverrides ?? {}),
      },
    });
    is = await createIdentityServer({ config: isConfig, transport, logger: createLogger({ level, name: "is", destination: isLogs }) });
    await is.start({ host: "127.0.0.1", port: isPort });
    const theIs = is;
    return {
      hs,
      is,
      hsUrl: hsAddr.url,
      isUrl,
      mails,
      hsLogs,
      isLogs,
      async close() {
        await theIs.stop();
        await hs.stop();
        dir.cleanup();
      },
    };
  } catch (e) {
    await is?.stop();
    await hs.stop();
    dir.cleanup();
    throw e;
  }
}
