/**
 * Builds an identity server from a validated config: opens the database, runs migrations,
 * loads keys and the pepper, wires the domain, the routes, the onbind delivery worker, the
 * mail outbox and the periodic purge. `start()` listens and starts the workers; `stop()`
 * shuts down gracefully (HTTP first, then workers, then the database).
 */
import { randomBytes as nodeRandomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import {
  createHttpApp,
  createLogger,
  createMetrics,
  createRateLimiter,
  createRouter,
  inTransaction,
  InProcessNotifier,
  openDatabase,
  rateLimitError,
  runMigrations,
  sqlitePath,
  systemClock,
  type Clock,
  type DatabaseHandle,
  type Metrics,
  type Notifier,
  type RateLimiter,
} from "@beckon/server-kit";
import type { FastifyInstance } from "fastify";
import type { IdentityServerConfig } from "./config.js";
import { createStores, GroupCommitter, SqliteHotReads, IS_MIGRATIONS_TABLE, storageMigrations, type IsDatabase, type Stores, type TransactionRunner } from "./storage/index.js";
import type { DomainContext, DomainMetrics, Limits, MailQueue, SmsSender } from "./domain/context.js";
import { loadKeyRing } from "./domain/keys.js";
import { initPepper, PepperCache } from "./domain/lookup.js";
import { DeliveryWorker } from "./domain/delivery.js";
import { purgeExpiredInvites } from "./domain/invites.js";
import { ServerKeyCache } from "./domain/server-keys.js";
import { termsFingerprint } from "./domain/terms.js";
import type { HomeserverClient } from "./domain/homeserver-client.js";
import { createHomeserverClient } from "./outbound/homeserver-client.js";
import { identityAuthenticators, type MaybePrincipal } from "./http/auth.js";
import { registerIdentityRoutes } from "./http/routes.js";
import { createMailTransport, enqueueMail, MailOutbox, mailMigrations, type MailTransport } from "./mail/index.js";

export interface CreateIdentityServerOptions {
  config: IdentityServerConfig;
  clock?: Clock;
  logger?: Logger;
  /** Replaces the guarded outbound client (tests). */
  homeservers?: HomeserverClient;
  /** Replaces the SMTP transport built from `smtp_url`. */
  transport?: MailTransport;
  /** Replaces the whole mail system (tests without SMTP): enqueue + wake, no worker. */
  mail?: MailQueue;
  sms?: SmsSender;
  notifier?: Notifier;
  randomBytes?: (n: number) => Uint8Array;
  /** Seeded random for back-off jitter (tests). */
  random?: () => number;
}

export interface IdentityServer {
  app: FastifyInstance;
  ctx: DomainContext;
  delivery: DeliveryWorker;
  metrics: Metrics;
  database: DatabaseHandle<IsDatabase>;
  /** Listens on `config.listen` (or the given port) and starts the workers; resolves to the bound address. */
  start(listen?: { host?: string; port?: number }): Promise<{ host: string; port: number; url: string }>;
  /** Starts only the background workers (delivery, mail, purge), e.g. for inject()-only tests. */
  startWorkers(): void;
  /** Graceful shutdown: stop taking requests, finish in-flight work, close the database. */
  stop(): Promise<void>;
  /** Runs the periodic purge now (expired invites, old sessions). */
  purge(): Promise<void>;
}

const LOG_SMS: (logger: Logger) => SmsSender = (logger) => ({
  async send(to, text) {
    // Development sender: no gateway. The code is logged (not a secret worth more than the SMS itself).
    logger.info({ to, text }, "SMS (development sender, not sent)");
  },
});

function limiterSet(config: IdentityServerConfig, clock: Clock): Limits {
  const rl = config.rate_limits;
  const make = (s: { per_second: number; burst: number }): RateLimiter =>
    createRateLimiter({ perSecond: s.per_second, burst: s.burst, enabled: rl.enabled, clock, maxKeys: 50_000 });
  const limiters: Record<Parameters<Limits["check"]>[0], RateLimiter> = {
    "requestToken.ip": make(rl.request_token_ip),
    "requestToken.address": make(rl.request_token_address),
    "storeInvite.sender": make(rl.store_invite_sender),
    "register.ip": make(rl.register_ip),
  };
  return {
    check(kind, key) {
      const r = limiters[kind].take(key);
      if (!r.ok) throw rateLimitError(r.retryAfterMs);
    },
  };
}

function domainMetrics(m: Metrics): DomainMetrics {
  const lookups = m.counter("lookup_addresses_total", "Addresses looked up");
  const lookupRequests = m.counter("lookup_requests_total", "Lookup requests");
  const stored = m.counter("invites_stored_total", "Invites stored");
  const deduped = m.counter("invites_deduplicated_total", "store-invite requests answered from a recent identical invite");
  const deliveries = m.counter<"outcome">("onbind_deliveries_total", "Invites in onbind deliveries by outcome", ["outcome"]);
  return {
    lookups(n) {
      lookupRequests.inc();
      lookups.inc(n);
    },
    inviteStored: () => stored.inc(),
    inviteDeduplicated: () => deduped.inc(),
    deliveries: (outcome, n) => deliveries.inc({ outcome }, n),
  };
}

export async function createIdentityServer(options: CreateIdentityServerOptions): Promise<IdentityServer> {
  const { config } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger({ level: config.log_level, name: "beckon-is" });
  const notifier = options.notifier ?? new InProcessNotifier();
  const randomBytes = options.randomBytes ?? ((n: number) => new Uint8Array(nodeRandomBytes(n)));

  if (config.outbound.insecure_skip_tls_verify) {
    logger.warn("INSECURE: outbound TLS certificate checks are OFF (outbound.insecure_skip_tls_verify). Test use only!");
  }
  if (config.outbound.allow_private) {
    logger.warn("outbound.allow_private is on: requests to loopback and private addresses are allowed (test/development only)");
  }

  const database = await openDatabase<IsDatabase>({
    url: config.database_url,
    ...(config.database_schema ? { schema: config.database_schema } : {}),
    onSqliteCheckpointError: (message) => logger.error({ err: message }, "SQLite checkpoint thread failed; the server's connection checkpoints by itself from now on"),
  });
  try {
    await runMigrations(database, [...storageMigrations, ...mailMigrations], IS_MIGRATIONS_TABLE);
  } catch (e) {
    await database.close();
    throw e;
  }
  const hotPath = database.engine === "sqlite" ? sqlitePath(config.database_url) : undefined;
  const hot = hotPath && hotPath !== ":memory:" ? new SqliteHotReads(hotPath) : undefined;
  const stores = createStores(database.db, database.engine, hot);
  const transact: TransactionRunner = <T>(fn: (s: Stores) => Promise<T>) => inTransaction(database.db, (trx) => fn(createStores(trx, database.engine)));
  const group = database.engine === "sqlite" ? new GroupCommitter(database.db, (trx) => createStores(trx, database.engine)) : undefined;
  const transactGrouped: TransactionRunner | undefined = group ? <T>(fn: (s: Stores) => Promise<T>) => group.run(fn) : undefined;

  const metrics = createMetrics("beckon_is");
  const ownClient = options.homeservers
    ? undefined
    : createHomeserverClient({
      map: config.homeservers,
      allowPrivate: config.outbound.allow_private || config.outbound.insecure_skip_tls_verify,
      insecureSkipTlsVerify: config.outbound.insecure_skip_tls_verify,
      timeoutMs: config.outbound.timeout,
      maxResponseBytes: config.outbound.max_response_size,
      logger,
      clock,
    });
  const homeservers: HomeserverClient = options.homeservers ?? ownClient!;

  let outbox: MailOutbox | undefined;
  let transportToClose: MailTransport | undefined;
  let mail: MailQueue;
  if (options.mail) {
    mail = options.mail;
  } else {
    const transport =
      options.transport ??
      createMailTransport({
        smtpUrl: config.smtp_url,
        requireTls: config.email.require_tls,
        from: config.email.from,
        logger,
        insecureSkipTlsVerify: config.outbound.insecure_skip_tls_verify,
      });
    transportToClose = transport;
    const box = new MailOutbox({ db: database.db, engine: database.engine, transport, clock, logger, notifier, metrics, from: config.email.from });
    outbox = box;
    const renderOptions = {
      webClientLocation: config.web_client_location,
      from: config.email.from,
      ...(config.email.template_dir !== undefined ? { templateDir: config.email.template_dir } : {}),
      ...(config.email.brand !== undefined ? { brand: config.email.brand } : {}),
    };
    mail = {
      enqueue: (trx: Kysely<unknown>, m, now) => enqueueMail(trx, m, now, renderOptions),
      wake: () => box.wake(),
    };
  }

  const keys = await loadKeyRing(stores.signingKeys, config.server_name, clock.now(), randomBytes);
  const ctx: DomainContext = {
    stores,
    transact,
    ...(transactGrouped ? { transactGrouped } : {}),
    clock,
    notifier,
    keys,
    mail,
    sms: options.sms ?? LOG_SMS(logger),
    homeservers,
    limits: limiterSet(config, clock),
    metrics: domainMetrics(metrics),
    logger,
    randomBytes,
    deterministicKeys: options.randomBytes !== undefined,
    settings: {
      serverName: config.server_name,
      otherNames: config.other_names,
      publicBaseUrl: config.public_base_url,
      webClientLocation: config.web_client_location,
      inviteLifetimeMs: config.invites.lifetime,
      inviteDedupeWindowMs: config.invites.dedupe_window,
      sessionLifetimeMs: config.validation.session_lifetime,
      redactUsernameChars: config.email.redact_username_chars,
      redactDomainChars: config.email.redact_domain_chars,
      terms: config.terms,
      homeserverAllowList: config.homeserver_allow_list.map((s) => s.toLowerCase()),
      lookupLimit: config.lookup_limit,
    },
  };
  await initPepper(ctx, config.pepper);

  const { app, ...rest } = createHttpApp({ logger, bodyLimit: config.body_limit });
  const router = createRouter<MaybePrincipal>(
    { app, ...rest },
    { authenticators: identityAuthenticators(ctx, termsFingerprint(config.terms)), onResponse: (d, s, t) => metrics.onResponse(d, s, t) },
  );
  registerIdentityRoutes(router, { ctx, pepper: new PepperCache(), serverKeys: new ServerKeyCache(homeservers, clock, logger) });
  if (config.metrics.enabled) metrics.registerMetricsRoute(app);

  const delivery = new DeliveryWorker(ctx, {
    baseBackoffMs: config.delivery.base_backoff,
    maxBackoffMs: config.delivery.max_backoff,
    leaseMs: config.delivery.lease,
    batchSize: config.delivery.batch_size,
    ...(options.random ? { random: options.random } : {}),
  });

  let cancelPurge: (() => void) | undefined;
  let workersStarted = false;
  let stopped = false;
  const purge = async () => {
    await purgeExpiredInvites(ctx);
    await stores.sessions.purgeOlderThan(clock.now() - config.validation.session_lifetime);
  };
  const schedulePurge = () => {
    cancelPurge = clock.setTimeout(() => {
      purge()
        .catch((e: unknown) => logger.error({ err: e instanceof Error ? e.message : String(e) }, "purge failed"))
        .finally(() => {
          if (!stopped) schedulePurge();
        });
    }, config.invites.purge_interval);
  };

  const startWorkers = () => {
    if (workersStarted) return;
    workersStarted = true;
    delivery.start();
    outbox?.start();
    schedulePurge();
  };

  return {
    app,
    ctx,
    delivery,
    metrics,
    database,
    startWorkers,
    purge,
    async start(listen) {
      const host = listen?.host ?? config.listen.host;
      const port = listen?.port ?? config.listen.port;
      await app.listen({ host, port });
      const addr = app.server.address();
      const bound = typeof addr === "object" && addr ? addr.port : port;
      startWorkers();
      const url = `http://${host.includes(":") ? `[${host}]` : host}:${bound}`;
      logger.info({ url, serverName: config.server_name, database: database.describe }, "identity server listening");
      return { host, port: bound, url };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      cancelPurge?.();
      await app.close();
      await delivery.stop();
      await outbox?.stop();
      transportToClose?.close?.();
      hot?.close();
      ownClient?.close();
      await database.close();
    },
  };
}
