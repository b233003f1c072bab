/**
 * Identity-server configuration: YAML file + `BECKON_IS_*` environment overrides, validated
 * with every problem reported at once (server-kit `loadConfig`). Key names per DECISIONS.md.
 *
 * @example
 * const config = loadIdentityServerConfig({ file: "is.yaml", env: process.env });
 * config.invites.lifetime; // ms (default 30 days)
 */
import { c, configSpec, loadConfig, outboundSection, type ShapeOut } from "@beckon/server-kit";
import { MatrixError, v, type Validator } from "@beckon/protocol";
import type { TermsPolicyConfig } from "./domain/context.js";

const limit = (perSecond: number, burst: number) => ({
  per_second: c.default(c.number({ min: 0.0001 }), String(perSecond)),
  burst: c.default(c.number({ min: 1 }), String(burst)),
});

/** `terms`: policy id → `{version, <lang>: {name, url}}` (the shape `GET terms` serves). */
const vTerms: Validator<Record<string, TermsPolicyConfig>> = (x, path = "terms") => {
  if (x === undefined || x === null) return {};
  const raw = v.record(v.anyObject())(x, path);
  const out: Record<string, TermsPolicyConfig> = {};
  for (const [id, policy] of Object.entries(raw)) {
    const version = policy.version;
    if (typeof version !== "string" || version === "") throw new MatrixError("M_INVALID_PARAM", `${path}.${id}.version: required string`);
    const languages: Record<string, { name: string; url: string }> = {};
    for (const [lang, doc] of Object.entries(policy)) {
      if (lang === "version") continue;
      const d = v.object({ name: v.string({ minLength: 1 }), url: c.url() })(doc, `${path}.${id}.${lang}`);
      languages[lang] = { name: d.name, url: d.url };
    }
    if (Object.keys(languages).length === 0) throw new MatrixError("M_INVALID_PARAM", `${path}.${id}: needs at least one language entry {name, url}`);
    out[id] = { version, languages };
  }
  return out;
};

/** `v.optional` with a nameable type (declaration emit). */
const opt = <T>(inner: Validator<T>): Validator<T | undefined> => v.optional(inner);

const vStringList: Validator<string[]> = (x, path = "value") => (x === undefined ? [] : v.array(v.string({ minLength: 1 }))(x, path));

const identityServerConfigShape = {
  /** The name this IS signs with (`ed25519:0`) and answers to in `destination_is`. */
  server_name: v.string({ minLength: 1, maxLength: 255 }),
  /** Other names it also answers to (DECISIONS: `127.0.0.1:P` beside `localhost:P`). */
  other_names: vStringList,
  /** Base URL used in key_validity_url, mail links and sign URLs. */
  public_base_url: c.url(),
  listen: c.default(c.listen(), "127.0.0.1:8090"),
  database_url: c.default(v.string({ minLength: 1 }), "sqlite:./beckon-is.db"),
  /** PostgreSQL schema (optional; lets two servers share a database). */
  database_schema: opt(v.string({ pattern: /^[a-z_][a-z0-9_]{0,62}$/ })),
  /** server name → base URL for homeservers (trusted as configured). */
  homeservers: c.default(c.baseUrlMap(), {} as unknown as string),
  /** Homeservers allowed to register accounts (empty: any). */
  homeserver_allow_list: vStringList,
  outbound: outboundSection,
  smtp_url: c.default(c.url({ schemes: ["smtp", "smtps"] }), "smtp://127.0.0.1:25"),
  email: {
    from: c.default(v.string({ minLength: 3 }), "Beckon Identity <noreply@localhost>"),
    require_tls: c.default(c.boolean(), "false"),
    /** A directory of Sydent `*.eml.j2` templates (optional). */
    template_dir: opt(v.string({ minLength: 1 })),
    brand: opt(v.string({ minLength: 1 })),
    redact_username_chars: c.default(c.number({ min: 0, max: 64 }), "3"),
    redact_domain_chars: c.default(c.number({ min: 0, max: 64 }), "3"),
  },
  web_client_location: c.default(c.url(), "https://app.element.io"),
  rate_limits: {
    enabled: c.default(c.boolean(), "true"),
    request_token_ip: limit(1, 20),
    request_token_address: limit(0.1, 5),
    store_invite_sender: limit(10, 100),
    register_ip: limit(5, 50),
  },
  invites: {
    lifetime: c.default(c.duration({ min: 1000 }), "30d"),
    dedupe_window: c.default(c.duration(), "10m"),
    purge_interval: c.default(c.duration({ min: 1000 }), "1h"),
  },
  validation: {
    session_lifetime: c.default(c.duration({ min: 1000 }), "24h"),
  },
  delivery: {
    base_backoff: c.default(c.duration({ min: 1 }), "1s"),
    max_backoff: c.default(c.duration({ min: 1 }), "1h"),
    lease: c.default(c.duration({ min: 100 }), "60s"),
    batch_size: c.default(c.number({ min: 1, max: 10000 }), "100"),
  },
  terms: vTerms,
  /** A fixed lookup pepper (else one is generated and persisted); changing it rotates. */
  pepper: opt(v.string({ minLength: 1, maxLength: 255, pattern: /^[A-Za-z0-9._~-]+$/ })),
  lookup_limit: c.default(c.number({ min: 1, max: 100000 }), "10000"),
  body_limit: c.default(c.size({ min: 1024 }), "1MiB"),
  log_level: c.default(v.literal("fatal", "error", "warn", "info", "debug", "trace", "silent"), "info"),
  metrics: {
    enabled: c.default(c.boolean(), "true"),
  },
};

export const identityServerConfigSpec = configSpec(identityServerConfigShape);
export type IdentityServerConfig = ShapeOut<typeof identityServerConfigShape>;

/** Reads and validates the configuration (throws ConfigError listing every problem). */
export function loadIdentityServerConfig(opts: { file?: string; env?: Record<string, string | undefined>; overrides?: object } = {}): IdentityServerConfig {
  return loadConfig(identityServerConfigSpec, { ...opts, envPrefix: "BECKON_IS_" });
}
