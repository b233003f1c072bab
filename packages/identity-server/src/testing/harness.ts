/**
 * Test harness: an identity server on a temporary SQLite file (or a fresh PostgreSQL
 * database), a recording mail queue (or the real outbox), and helpers to register accounts.
 */
import { join } from "node:path";
import type { Kysely } from "kysely";
import { createDatabase } from "./databases.js";
import { FakeClock, createLogger, type Clock } from "@beckon/server-kit";
import { createIdentityServer, type CreateIdentityServerOptions, type IdentityServer } from "../app.js";
import { loadIdentityServerConfig, type IdentityServerConfig } from "../config.js";
import type { MailQueue } from "../domain/context.js";
import type { FakeHomeserver } from "./fake-homeserver.js";

export interface RecordedMail {
  to: string;
  kind: string;
  template: string;
  vars: Record<string, unknown>;
  dedupeKey?: string;
}

/** A MailQueue that keeps enqueued mails in memory (after the transaction commits). */
export class RecordingMail implements MailQueue {
  readonly mails: RecordedMail[] = [];
  wakes = 0;
  async enqueue(_trx: Kysely<unknown>, mail: RecordedMail): Promise<void> {
    this.mails.push(mail);
  }
  wake(): void {
    this.wakes++;
  }
}

export type EngineName = "sqlite" | "postgres";

export interface TestServer {
  is: IdentityServer;
  config: IdentityServerConfig;
  mail: RecordingMail;
  clock: Clock;
  databaseUrl: string;
  /** Registers `userId` (its server must be the fake homeserver's) and returns an IS token. */
  register(userId: string): Promise<string>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  engine?: EngineName;
  hs?: FakeHomeserver;
  clock?: Clock;
  overrides?: Record<string, unknown>;
  /** Use the real mail outbox (the SMTP URL must be in overrides). */
  realMail?: boolean;
  extra?: Partial<CreateIdentityServerOptions>;
  /** Reuse a database URL (restart tests). */
  databaseUrl?: string;
}

export function testConfig(databaseUrl: string, hs: FakeHomeserver | undefined, overrides: Record<string, unknown> = {}): IdentityServerConfig {
  const base: Record<string, unknown> = {
    server_name: "is.test",
    public_base_url: "http://127.0.0.1:8090",
    database_url: databaseUrl,
    rate_limits: { enabled: false },
    log_level: "silent",
    homeservers: hs ? { [hs.serverName]: hs.baseUrl } : {},
    pepper: "matrixrocks",
  };
  return loadIdentityServerConfig({ env: {}, overrides: deepMerge(base, overrides) });
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      typeof prev === "object" && prev !== null && !Array.isArray(prev) && typeof v === "object" && v !== null && !Array.isArray(v)
        ? deepMerge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export async function startTestServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const db = opts.databaseUrl ? { url: opts.databaseUrl, cleanup: async () => {} } : await createDatabase(opts.engine ?? "sqlite");
  const config = testConfig(db.url, opts.hs, opts.overrides);
  const clock = opts.clock ?? new FakeClock(1_700_000_000_000);
  const mail = new RecordingMail();
  const is = await createIdentityServer({
    config,
    clock,
    logger: createLogger({ level: "silent" }),
    ...(opts.realMail ? {} : { mail }),
    ...opts.extra,
  });
  return {
    is,
    config,
    mail,
    clock,
    databaseUrl: db.url,
    async register(userId) {
      if (!opts.hs) throw new Error("no fake homeserver");
      const res = await is.app.inject({ method: "POST", url: "/_matrix/identity/v2/account/register", payload: opts.hs.issueOpenId(userId) });
      if (res.statusCode !== 200) throw new Error(`register failed: ${res.statusCode} ${res.body}`);
      return (res.json() as { token: string }).token;
    },
    async close() {
      await is.stop();
      await db.cleanup();
    },
  };
}

export { FakeClock, join };
