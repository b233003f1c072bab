/**
 * Builds a homeserver from a validated config: database (migrations included), signing key,
 * domain services, the 3PID module, HTTP routes, metrics. `main.ts` and tests call it; only
 * `main.ts` reads files and the environment.
 *
 * @example
 * const hs = await createHomeserver({ config: homeserverConfigFor({ server_name: "localhost:8008", database_url: "sqlite::memory:" }) });
 * const res = await hs.app.inject({ method: "GET", url: "/_matrix/client/versions" });
 * await hs.stop();
 */
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import {
  InProcessNotifier,
  createHttpApp,
  createLogger,
  createMetrics,
  createOutboundClient,
  createRateLimiter,
  createRouter,
  rateLimitError,
  systemClock,
  type Clock,
  type Metrics,
  type Notifier,
  type RateLimiter,
} from "@beckon/server-kit";
import type { HomeserverConfig } from "./config.js";
import { AccountData } from "./domain/account-data.js";
import { Accounts, type Principal } from "./domain/accounts.js";
import { Membership } from "./domain/membership.js";
import { RoomEvents } from "./domain/room-events.js";
import { createAccountOps, createProfileOps, createRoomOps } from "./domain/room-ops.js";
import { Rooms } from "./domain/rooms.js";
import { loadOrCreateSigningKey } from "./domain/signing-key.js";
import { Sync } from "./domain/sync.js";
import { createThreepidApi } from "./domain/third-party-invites.js";
import type { ThreepidDeps } from "./domain/threepid-deps.js";
import { threepidMigrations } from "./domain/threepid-storage.js";
import type { ServerSigningKey } from "./domain/pdu.js";
import type { OutboundLike } from "./identity/outbound.js";
import { userAuthenticator } from "./http/auth.js";
import { registerAccountRoutes } from "./http/client/account.js";
import { registerAccountDataRoutes } from "./http/client/account-data.js";
import { registerDiscoveryRoutes } from "./http/client/discovery.js";
import { registerFilterRoutes } from "./http/client/filters.js";
import { registerMembershipRoutes } from "./http/client/membership.js";
import { registerProfileRoutes } from "./http/client/profile.js";
import { registerRoomRoutes } from "./http/client/rooms.js";
import { registerSyncRoutes } from "./http/client/sync.js";
import { registerThreepidRoutes } from "./http/client/threepid.js";
import type { HttpContext } from "./http/context.js";
import { registerFederationRoutes } from "./http/federation/threepid.js";
import { registerKeyRoutes } from "./http/key.js";
import { openHomeserverStorage, type HomeserverStorage } from "./storage/index.js";

export interface CreateHomeserverOptions {
  config: HomeserverConfig;
  clock?: Clock;
  logger?: Logger;
  /** The guarded outbound HTTP client (default: the kit's, configured from `outbound.*`). */
  outbound?: OutboundLike;
  notifier?: Notifier;
}

export interface Homeserver {
  app: FastifyInstance;
  /** The server name in use (the one stored when the database was created). */
  serverName: string;
  signingKey: ServerSigningKey;
  storage: HomeserverStorage;
  accounts: Accounts;
  rooms: Rooms;
  metrics: Metrics;
  /** Listens on `config.listen` (or `port`/`host` given); returns the bound address. */
  start(opts?: { host?: string; port?: number }): Promise<{ host: string; port: number; url: string }>;
  /** Closes the HTTP server, then the database. */
  stop(): Promise<void>;
  /** Recomputes every room's current-state and membership projections from the event log. */
  rebuildProjections(): Promise<void>;
}

export async function createHomeserver(opts: CreateHomeserverOptions): Promise<Homeserver> {
  const { config } = opts;
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? createLogger({ level: config.log_level, name: "homeserver" });
  const storage = await openHomeserverStorage({
    url: config.database_url,
    ...(config.database_schema ? { schema: config.database_schema } : {}),
    extraMigrations: threepidMigrations,
    onSqliteCheckpointError: (message) => logger.error({ err: message }, "SQLite checkpoint thread failed; the server's connection checkpoints by itself from now on"),
  });
  try {
    // DECISIONS.md: the server name is fixed when the data is created.
    const serverName = await storage.accounts.setSettingIfAbsent("server_name", config.server_name);
    if (serverName !== config.server_name) logger.warn({ stored: serverName, configured: config.server_name }, "keeping the server name stored in the database");
    const key = await loadOrCreateSigningKey(storage.accounts, serverName, clock.now());
    const notifier = opts.notifier ?? new InProcessNotifier();
    if (config.outbound.insecure_skip_tls_verify) logger.warn("outbound.insecure_skip_tls_verify is ON: TLS certificates of peers are NOT checked (tests only)");
    const outbound =
      opts.outbound ??
      createOutboundClient({
        allowPrivate: config.outbound.allow_private,
        insecureSkipTlsVerify: config.outbound.insecure_skip_tls_verify,
        timeoutMs: config.outbound.timeout,
        maxResponseBytes: config.outbound.max_response_size,
        logger,
      });

    const accounts = new Accounts({
      store: storage.accounts,
      serverName,
      clock,
      scryptN: config.passwords.scrypt_n,
      registrationEnabled: config.registration.enabled,
      sharedSecret: config.registration.shared_secret,
    });
    const events = new RoomEvents({ rooms: storage.rooms, key, clock, notifier });
    const rooms = new Rooms({ rooms: storage.rooms, events, accounts, serverName, clock });

    const rl = config.rate_limits;
    const limiter = (s: { per_second: number; burst: number }): RateLimiter =>
      createRateLimiter({ perSecond: Math.max(s.per_second, 1e-6), burst: s.burst, enabled: rl.enabled, clock });
    const limiters = {
      invitesPerRoom: limiter(rl.invites_per_room),
      invitesPerUser: limiter(rl.invites_per_user),
      invitesPerIssuer: limiter(rl.invites_per_issuer),
      third_party_invites: limiter(rl.third_party_invites),
      login: limiter(rl.login),
      registration: limiter(rl.registration),
    };
    const take = (l: RateLimiter, key: string) => {
      const r = l.take(key);
      if (!r.ok) throw rateLimitError(r.retryAfterMs);
    };

    const threepidDeps: ThreepidDeps<unknown> = {
      rooms: createRoomOps(rooms),
      profiles: createProfileOps(accounts),
      accounts: createAccountOps(accounts),
      config: {
        identityServers: { map: config.identity_servers.map, onlyMapped: config.identity_servers.only_mapped },
        allowPrivate: config.outbound.allow_private,
        identityServerTimeoutMs: config.outbound.timeout,
      },
      serverName,
      signingKey: { keyId: key.keyId, seed: key.seed },
      outbound,
      clock,
      logger,
      db: storage.handle.db as unknown as Kysely<unknown>,
      userIdOf: (p) => (p as Principal).userId,
    };
    const threepid = createThreepidApi(threepidDeps);
    const membership = new Membership(rooms, {
      checkInviteRate(roomId, sender, target) {
        take(limiters.invitesPerRoom, roomId);
        take(limiters.invitesPerIssuer, sender);
        take(limiters.invitesPerUser, target);
      },
      verifyThirdPartySigned: (roomId, signed, userId) => threepid.verifyThirdPartySigned(roomId, signed, userId),
    });
    const sync = new Sync({
      rooms: storage.rooms,
      notifier,
      clock,
      accountData: (userId, since) => storage.accounts.listAccountData(userId, since),
      loadFilter: (userId, filterId) => storage.accounts.getFilter(userId, filterId),
    });
    const accountData = new AccountData({ accounts: storage.accounts, rooms: storage.rooms, notifier });

    const m = createHttpApp({ logger, bodyLimit: config.http.body_limit });
    const metrics = createMetrics("beckon_hs");
    metrics.instrumentApp(m.app);
    metrics.registerMetricsRoute(m.app);
    const router = createRouter<Principal>(m, { authenticators: { user: userAuthenticator(accounts) } });
    const publicBaseUrl = config.public_base_url ?? `http://${config.listen.host.includes(":") ? `[${config.listen.host}]` : config.listen.host}:${config.listen.port}`;
    const ctx: HttpContext = {
      router,
      config,
      serverName,
      publicBaseUrl,
      accounts,
      accountData,
      rooms,
      membership,
      sync,
      threepid,
      limit(kind, key) {
        take(limiters[kind], key);
      },
    };
    registerDiscoveryRoutes(ctx);
    registerAccountRoutes(ctx);
    registerProfileRoutes(ctx);
    registerRoomRoutes(ctx);
    registerMembershipRoutes(ctx);
    registerSyncRoutes(ctx);
    registerAccountDataRoutes(ctx);
    registerFilterRoutes(ctx);
    registerThreepidRoutes(router, threepidDeps);
    registerFederationRoutes(router, threepidDeps);
    registerKeyRoutes(router, threepidDeps);

    let stopped = false;
    return {
      app: m.app,
      serverName,
      signingKey: key,
      storage,
      accounts,
      rooms,
      metrics,
      async start(o = {}) {
        const host = o.host ?? config.listen.host;
        await m.app.listen({ host, port: o.port ?? config.listen.port });
        const addr = m.app.server.address() as AddressInfo;
        const h = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
        logger.info({ server_name: serverName, url: `http://${h}:${addr.port}`, database: storage.handle.describe }, "homeserver listening");
        return { host: addr.address, port: addr.port, url: `http://${h}:${addr.port}` };
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        sync.shutdown();
        await m.app.close();
        await storage.close();
      },
      async rebuildProjections() {
        for (const roomId of await storage.rooms.listRoomIds()) await storage.rooms.rebuildRoomProjections(roomId);
      },
    };
  } catch (e) {
    await storage.close();
    throw e;
  }
}
