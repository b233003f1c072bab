/**
 * The homeserver's configuration: YAML file, `BECKON_HS_*` environment, overrides
 * (DECISIONS.md fixes the key names). Every problem is reported at once; the result is frozen.
 *
 * @example
 * const config = loadHomeserverConfig({ file: "hs.yaml", env: process.env });
 * config.server_name; // "localhost:8008"
 */
import { v } from "@beckon/protocol";
import { c, configSpec, loadConfig, outboundSection, rateLimitSetting, type LoadConfigOptions } from "@beckon/server-kit";

export const homeserverConfigSpec = configSpec({
  /** `host[:port]`: the part after `:` in every user and room ID. */
  server_name: v.string({ minLength: 1, maxLength: 255, pattern: /^[A-Za-z0-9.\-[\]:]+$/ }),
  /** How clients reach us (`.well-known/matrix/client`); default `http://<listen>`. */
  public_base_url: v.optional(c.url()),
  listen: c.default(c.listen(), "127.0.0.1:8008"),
  database_url: c.default(v.string({ minLength: 1 }), "sqlite:./homeserver.db"),
  /** PostgreSQL schema (lets several servers share one database). */
  database_schema: v.optional(v.string({ pattern: /^[a-z_][a-z0-9_]{0,62}$/ })),
  registration: {
    /** Open registration with `m.login.dummy`. */
    enabled: c.default(c.boolean(), "true"),
    /** Synapse-style shared-secret admin registration (`/_synapse/admin/v1/register`); off when absent. */
    shared_secret: v.optional(v.string({ minLength: 1 })),
  },
  passwords: {
    /** scrypt cost N (power of two). 16384 ≈ 16 MiB and a few tens of ms per hash. */
    scrypt_n: c.default(c.number({ min: 2, max: 1_048_576 }), "16384"),
  },
  identity_servers: {
    /** `id_server` name → base URL (trusted as configured). */
    map: c.default(c.baseUrlMap(), {}),
    /** Only talk to identity servers in the map. */
    only_mapped: c.default(c.boolean(), "false"),
    /** Advertised in `.well-known/matrix/client` when set. */
    default: v.optional(c.url()),
  },
  outbound: outboundSection,
  rate_limits: {
    enabled: c.default(c.boolean(), "true"),
    /** Like Synapse's `rc_invites.per_room`. */
    invites_per_room: rateLimitSetting({ perSecond: 100, burst: 500 }),
    /** Like `rc_invites.per_user` (invites received by one user). */
    invites_per_user: rateLimitSetting({ perSecond: 100, burst: 500 }),
    /** Like `rc_invites.per_issuer` (invites sent by one user). */
    invites_per_issuer: rateLimitSetting({ perSecond: 100, burst: 500 }),
    /** `rc_third_party_invite`: 3PID invites per sender. */
    third_party_invites: rateLimitSetting({ perSecond: 100, burst: 500 }),
    /** Login attempts per client address. */
    login: rateLimitSetting({ perSecond: 100, burst: 500 }),
    /** Registrations per client address. */
    registration: rateLimitSetting({ perSecond: 100, burst: 500 }),
  },
  invites: {
    lifetime: c.default(c.duration(), "30d"),
    dedupe_window: c.default(c.duration(), "10m"),
  },
  http: {
    body_limit: c.default(c.size({ min: 1024 }), "1MiB"),
  },
  log_level: c.default(v.literal("fatal", "error", "warn", "info", "debug", "trace", "silent"), "info"),
  web_client_location: c.default(c.url(), "https://app.element.io"),
});

export type HomeserverConfig = NonNullable<(typeof homeserverConfigSpec)["__type"]>;

/** Loads and validates the configuration (file < env < overrides). Throws ConfigError listing every problem. */
export function loadHomeserverConfig(options: Omit<LoadConfigOptions, "envPrefix"> = {}): HomeserverConfig {
  return loadConfig(homeserverConfigSpec, { ...options, envPrefix: "BECKON_HS_" });
}

/** A config for tests and tools: defaults plus `overrides` (no file, no environment). */
export function homeserverConfigFor(overrides: Record<string, unknown>): HomeserverConfig {
  return loadConfig(homeserverConfigSpec, { envPrefix: "BECKON_HS_", overrides });
}
