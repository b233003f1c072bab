/**
 * What the 3PID pieces (identity-server client, third-party invites, onbind, OpenID, the
 * account 3PID routes and the key endpoint) need from the homeserver, and the one entry point
 * the composition root calls: {@link createThreepidApi}. Route registration lives in
 * `http/client/threepid.ts`, `http/federation/*` and `http/key.ts` and takes the same deps.
 */
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Clock } from "@beckon/server-kit";
import type { AccountOps, ProfileOps, RoomOps } from "./contracts.js";
import type { OutboundLike } from "../identity/outbound.js";

/** The config slice the 3PID pieces read (names follow DECISIONS.md "Tooling facts"). */
export interface ThreepidConfig {
  /** `identity_servers`: `id_server` → base URL, and `only_mapped`. */
  identityServers: { map: Readonly<Record<string, string>>; onlyMapped?: boolean };
  /**
   * `outbound.allow_private` (test-only, loudly logged by the composition root): unmapped
   * identity servers on loopback/private addresses are allowed.
   */
  allowPrivate?: boolean;
  /** Timeout of each identity-server request (default 10 s). */
  identityServerTimeoutMs?: number;
  /** Lifetime of OpenID tokens (default 1 h, as Synapse). */
  openidTokenLifetimeMs?: number;
  /** `valid_until_ts` of the published server key, from now (default 24 h). */
  keyValidityMs?: number;
  /** Concurrency of onbind invites within one request (default 8). */
  onbindConcurrency?: number;
}

export interface ThreepidDeps<DB = unknown> {
  rooms: RoomOps;
  profiles: ProfileOps;
  accounts: AccountOps;
  config: ThreepidConfig;
  /** This homeserver's name, e.g. `localhost:8008`. */
  serverName: string;
  /** The server's ed25519 signing key (`seed`: 32 bytes). */
  signingKey: { keyId: string; seed: Uint8Array };
  /** The kit's guarded outbound client (`createOutboundClient`). */
  outbound: OutboundLike;
  clock: Clock;
  logger: Logger;
  /**
   * The homeserver's database; the 3PID tables come from {@link threepidMigrations}
   * (`./threepid-storage.js`), which the core runs with its own migrations.
   */
  db: Kysely<DB>;
  /**
   * The user ID of a `user`-authenticated principal (default: its `userId` or `user_id`
   * property).
   */
  userIdOf?: (principal: unknown) => string;
}

/** Default {@link ThreepidDeps.userIdOf}. */
export function defaultUserIdOf(principal: unknown): string {
  if (typeof principal === "object" && principal !== null) {
    const p = principal as { userId?: unknown; user_id?: unknown };
    if (typeof p.userId === "string") return p.userId;
    if (typeof p.user_id === "string") return p.user_id;
  }
  throw new Error("threepid routes: the user authenticator's principal has no userId");
}

export { createThreepidApi, type ThreepidModule } from "./third-party-invites.js";
export { threepidMigrations, type ThreepidDatabase } from "./threepid-storage.js";
export { registerThreepidRoutes } from "../http/client/threepid.js";
export { registerFederationRoutes } from "../http/federation/threepid.js";
export { registerKeyRoutes } from "../http/key.js";
export type { ThirdPartyMemberInvite } from "./onbind.js";
export type { OutboundLike } from "../identity/outbound.js";
