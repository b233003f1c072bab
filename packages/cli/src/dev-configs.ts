/**
 * The two server configurations `beckon up` generates, per DECISIONS.md "`beckon up` on any
 * ports": the homeserver is `localhost:Q` (kept from the first start), the identity server is
 * `localhost:P` with base URL `http://127.0.0.1:P` and also answers to `127.0.0.1:P`, and each
 * reaches the other through an explicit name → base-URL map over plain http.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface DevOptions {
  /** Absolute data directory. */
  dataDir: string;
  homeserverPort: number;
  identityPort: number;
  /** Where the identity server sends mail (the catcher, or a relay given by --smtp-url). */
  smtpUrl: string;
  /** PostgreSQL URL for both servers (schemas beckon_hs / beckon_is); absent → SQLite files in the data dir. */
  databaseUrl?: string;
  /** Extra settings deep-merged over the generated ones (from beckon.yaml). */
  homeserverExtra?: Record<string, unknown>;
  identityServerExtra?: Record<string, unknown>;
}

/** What `beckon up` remembers in the data dir between starts. */
export interface DevState {
  version: 1;
  /** The homeserver's server name, fixed when the data dir was created. */
  homeserver_server_name: string;
  /** Every identity-server name used with this data dir (old `id_server`s in room state keep resolving). */
  identity_server_names: string[];
  created_at: string;
}

export const STATE_FILE = "beckon-state.json";
export const HOMESERVER_CONFIG_FILE = "homeserver.yaml";
export const IDENTITY_SERVER_CONFIG_FILE = "identity-server.yaml";
export const MAIL_STORE_FILE = "mail.jsonl";

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** Reads the data dir's state, or creates it for these ports (first start). Writes it back when it changed. */
export function loadOrCreateState(dataDir: string, homeserverPort: number, identityPort: number, now = new Date()): { state: DevState; created: boolean } {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, STATE_FILE);
  const isName = `localhost:${identityPort}`;
  if (existsSync(file)) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new Error(`${file} is not valid JSON (${e instanceof Error ? e.message : String(e)}); fix or delete it`);
    }
    if (!isRecord(raw) || typeof raw.homeserver_server_name !== "string") throw new Error(`${file} has no homeserver_server_name; fix or delete it`);
    const names = Array.isArray(raw.identity_server_names) ? raw.identity_server_names.filter((n): n is string => typeof n === "string") : [];
    const state: DevState = {
      version: 1,
      homeserver_server_name: raw.homeserver_server_name,
      identity_server_names: names.includes(isName) ? names : [...names, isName],
      created_at: typeof raw.created_at === "string" ? raw.created_at : now.toISOString(),
    };
    if (!names.includes(isName)) writeFileSync(file, JSON.stringify(state, null, 2) + "\n");
    return { state, created: false };
  }
  const state: DevState = { version: 1, homeserver_server_name: `localhost:${homeserverPort}`, identity_server_names: [isName], created_at: now.toISOString() };
  writeFileSync(file, JSON.stringify(state, null, 2) + "\n");
  return { state, created: true };
}

/** Deep merge: objects merge key by key, anything else in `over` replaces. */
export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const prev = out[k];
    out[k] = isRecord(prev) && isRecord(v) ? deepMerge(prev, v) : v;
  }
  return out;
}

const generous = { per_second: 200, burst: 2000 };

/**
 * The PostgreSQL URL for one server's schema. Besides `database_schema`, the URL itself sets
 * the connection's `search_path` (libpq `options`), so that every pooled connection — also the
 * first one, which creates the schema — works in that schema from its first query.
 */
export function schemaUrl(url: string, schema: string): string {
  const u = new URL(url);
  if (!u.searchParams.has("options")) u.searchParams.set("options", `-c search_path=${schema}`);
  return u.toString();
}

/** The homeserver's config for `beckon up`. */
export function devHomeserverConfig(opts: DevOptions, state: DevState): Record<string, unknown> {
  const isBase = `http://127.0.0.1:${opts.identityPort}`;
  const map: Record<string, string> = {};
  // Earlier identity-server names of this data dir first, so that the current port wins on a clash.
  for (const name of state.identity_server_names) map[name] = isBase;
  map[`localhost:${opts.identityPort}`] = isBase;
  map[`127.0.0.1:${opts.identityPort}`] = isBase;
  const config: Record<string, unknown> = {
    server_name: state.homeserver_server_name,
    public_base_url: `http://127.0.0.1:${opts.homeserverPort}`,
    listen: `127.0.0.1:${opts.homeserverPort}`,
    ...(opts.databaseUrl
      ? { database_url: schemaUrl(opts.databaseUrl, "beckon_hs"), database_schema: "beckon_hs" }
      : { database_url: `sqlite:${join(opts.dataDir, "homeserver.db")}` }),
    registration: { enabled: true },
    identity_servers: { map, only_mapped: false, default: isBase },
    rate_limits: {
      enabled: true,
      invites_per_room: generous,
      invites_per_user: generous,
      invites_per_issuer: generous,
      third_party_invites: generous,
      login: generous,
      registration: generous,
    },
    log_level: "info",
  };
  return deepMerge(config, opts.homeserverExtra ?? {});
}

/** The identity server's config for `beckon up`. */
export function devIdentityServerConfig(opts: DevOptions, state: DevState): Record<string, unknown> {
  const config: Record<string, unknown> = {
    server_name: `localhost:${opts.identityPort}`,
    other_names: [`127.0.0.1:${opts.identityPort}`],
    public_base_url: `http://127.0.0.1:${opts.identityPort}`,
    listen: `127.0.0.1:${opts.identityPort}`,
    ...(opts.databaseUrl
      ? { database_url: schemaUrl(opts.databaseUrl, "beckon_is"), database_schema: "beckon_is" }
      : { database_url: `sqlite:${join(opts.dataDir, "identity-server.db")}` }),
    homeservers: { [state.homeserver_server_name]: `http://127.0.0.1:${opts.homeserverPort}` },
    smtp_url: opts.smtpUrl,
    email: { from: "Beckon identity server (development) <noreply@beckon.localhost>" },
    rate_limits: {
      enabled: true,
      request_token_ip: generous,
      request_token_address: generous,
      store_invite_sender: generous,
      register_ip: generous,
    },
    // A development stack: a homeserver that was down gets its invites soon after it is back.
    delivery: { base_backoff: "500ms", max_backoff: "5s" },
    log_level: "info",
  };
  return deepMerge(config, opts.identityServerExtra ?? {});
}
