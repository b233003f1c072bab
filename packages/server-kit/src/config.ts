/**
 * Server configuration: a YAML file, then environment overrides, then programmatic overrides
 * (CLI flags), validated against a spec built from the protocol `v` validators. Every problem
 * is reported at once (a config with three typos fails with three messages), and the result
 * is deeply frozen.
 *
 * Key names are the ones `DECISIONS.md` fixes (`server_name`, `public_base_url`, `listen`,
 * `database_url`, `identity_servers`, `homeservers`, `outbound.allow_private`,
 * `outbound.insecure_skip_tls_verify`, `smtp_url`, `web_client_location`, `rate_limits.*`,
 * `invites.lifetime`, `invites.dedupe_window`, `terms`); each server declares its own spec
 * with the shared pieces below ({@link c}, {@link outboundSection}, {@link rateLimitSetting}).
 *
 * Environment: `BECKON_IS_SMTP_URL` sets `smtp_url`; `__` descends into a section
 * (`BECKON_HS_RATE_LIMITS__ENABLED=false` sets `rate_limits.enabled`). A value is first tried
 * as the plain string and, when the field refuses that, parsed as a YAML/JSON scalar or
 * collection (`false`, `30`, `{"localhost:8090": "http://127.0.0.1:8090"}`).
 *
 * @example
 * const spec = configSpec({
 *   server_name: v.string(),
 *   database_url: c.default(v.string(), "sqlite:./data.db"),
 *   invites: { lifetime: c.default(c.duration(), "30d") },
 * });
 * const config = loadConfig(spec, { file: "is.yaml", env: process.env, envPrefix: "BECKON_IS_" });
 * config.invites.lifetime; // milliseconds
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type * as YamlModule from "yaml";
import { isMatrixError, MatrixError, v, type Validator } from "@beckon/protocol";

// `yaml` is loaded only when something needs parsing (a config file, or an env value that is not
// a plain string for its field): a server configured by env and defaults never pays for it.
let yamlModule: typeof YamlModule | undefined;
function parseYaml(text: string, options?: YamlModule.ParseOptions & YamlModule.DocumentOptions): unknown {
  yamlModule ??= createRequire(import.meta.url)("yaml") as typeof YamlModule;
  return yamlModule.parse(text, options);
}

/** A config value is invalid; `problems` lists every problem found, one line each. */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly problems: readonly string[];
  constructor(problems: string[], source?: string) {
    super(`Invalid configuration${source ? ` (${source})` : ""}:\n  - ${problems.join("\n  - ")}`);
    this.problems = problems;
  }
}

/** A section of a config: each key is a validator (a leaf) or a nested section. */
export interface ConfigShape {
  readonly [key: string]: ConfigField;
}
export type ConfigField = Validator<unknown> | ConfigShape;

type FieldOut<F> = F extends Validator<infer T> ? T : F extends ConfigShape ? ShapeOut<F> : never;
type OptKeys<S> = { [K in keyof S]: undefined extends FieldOut<S[K]> ? K : never }[keyof S];
type ReqKeys<S> = Exclude<keyof S, OptKeys<S>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
/** The validated, typed value of a section. */
export type ShapeOut<S extends ConfigShape> = Simplify<
  { readonly [K in ReqKeys<S>]: FieldOut<S[K]> } & { readonly [K in OptKeys<S>]?: Exclude<FieldOut<S[K]>, undefined> }
>;

/** A validated configuration spec producing `T`. Build one with {@link configSpec}. */
export interface ConfigSpec<T> {
  readonly shape: ConfigShape;
  /** Type carrier only. */
  readonly __type?: T;
}

/** Wraps a shape as a spec; `T` is inferred from the validators. */
export function configSpec<S extends ConfigShape>(shape: S): ConfigSpec<ShapeOut<S>> {
  return { shape };
}

export interface LoadConfigOptions {
  /** A YAML (or JSON) file; absent → only env, overrides and defaults. */
  file?: string;
  /** The environment to read overrides from (pass `process.env` in `main.ts`). */
  env?: Record<string, string | undefined>;
  envPrefix: "BECKON_IS_" | "BECKON_HS_";
  /** Applied last (e.g. CLI flags), deep-merged over file and env. */
  overrides?: object;
  /**
   * Variables under the prefix that are not settings (default `["CONFIG"]`, i.e.
   * `BECKON_HS_CONFIG` may name the file). Any other unknown one is a problem.
   */
  envIgnore?: string[];
}

// ---------------------------------------------------------------------------------------
// Durations and sizes

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/**
 * Parses a duration into milliseconds: `"30d"`, `"10m"`, `"24h"`, `"1500ms"`, `"2w"`, `"1h30m"`,
 * or a bare number (already milliseconds). Throws a RangeError for anything else.
 */
export function parseDuration(input: string | number): number {
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0) throw new RangeError(`invalid duration ${input}`);
    return Math.round(input);
  }
  const s = input.trim().toLowerCase();
  if (/^\d+$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * (DURATION_UNITS[m[2] ?? ""] ?? NaN);
    matched = re.lastIndex;
  }
  if (s === "" || matched !== s.length || !Number.isFinite(total)) {
    throw new RangeError(`invalid duration "${input}" (use e.g. 500ms, 10s, 10m, 24h, 30d)`);
  }
  return Math.round(total);
}

/** Parses a size into bytes: `"1MiB"`, `"50k"`, `"2MB"` (powers of 1024), or a bare number of bytes. */
export function parseSize(input: string | number): number {
  if (typeof input === "number") {
    if (!Number.isSafeInteger(input) || input < 0) throw new RangeError(`invalid size ${input}`);
    return input;
  }
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(input.trim().toLowerCase());
  const unit = m ? SIZE_UNITS[m[2] ?? ""] : undefined;
  if (!m || unit === undefined) throw new RangeError(`invalid size "${input}" (use e.g. 512, 64k, 1MiB, 2GB)`);
  return Math.round(Number(m[1]) * unit);
}

function invalid(path: string, what: string): never {
  // Same shape as the protocol validators' errors, so the collector treats them alike.
  throw new MatrixError("M_INVALID_PARAM", `${path}: ${what}`);
}

/** Config-specific validators, to use beside the protocol's `v`. */
export const c = {
  /** A duration (`"30d"`, `"10m"`, or a number of ms) → milliseconds. */
  duration(opts: { min?: number; max?: number } = {}): Validator<number> {
    return (x, path = "value") => {
      if (typeof x !== "string" && typeof x !== "number") invalid(path, "must be a duration such as 10m, 24h or 30d");
      let ms: number;
      try {
        ms = parseDuration(x);
      } catch (e) {
        return invalid(path, (e as Error).message);
      }
      if (opts.min !== undefined && ms < opts.min) invalid(path, `must be at least ${opts.min} ms`);
      if (opts.max !== undefined && ms > opts.max) invalid(path, `must be at most ${opts.max} ms`);
      return ms;
    };
  },
  /** A size (`"1MiB"`, `"50k"`, or a number of bytes) → bytes. */
  size(opts: { min?: number; max?: number } = {}): Validator<number> {
    return (x, path = "value") => {
      if (typeof x !== "string" && typeof x !== "number") invalid(path, "must be a size such as 64k or 1MiB");
      let n: number;
      try {
        n = parseSize(x);
      } catch (e) {
        return invalid(path, (e as Error).message);
      }
      if (opts.min !== undefined && n < opts.min) invalid(path, `must be at least ${opts.min} bytes`);
      if (opts.max !== undefined && n > opts.max) invalid(path, `must be at most ${opts.max} bytes`);
      return n;
    };
  },
  /** A number given as a number (or as a numeric string from the environment). */
  number(opts: { min?: number; max?: number } = {}): Validator<number> {
    return (x, path = "value") => {
      const n = typeof x === "string" && x.trim() !== "" ? Number(x) : x;
      if (typeof n !== "number" || !Number.isFinite(n)) invalid(path, "must be a number");
      if (opts.min !== undefined && n < opts.min) invalid(path, `must be ≥ ${opts.min}`);
      if (opts.max !== undefined && n > opts.max) invalid(path, `must be ≤ ${opts.max}`);
      return n;
    };
  },
  /** An absolute URL with one of the given schemes (default http/https); returned as given, minus a trailing slash. */
  url(opts: { schemes?: string[] } = {}): Validator<string> {
    const schemes = opts.schemes ?? ["http", "https"];
    return (x, path = "value") => {
      if (typeof x !== "string") invalid(path, "must be a URL string");
      let u: URL;
      try {
        u = new URL(x);
      } catch {
        return invalid(path, `must be an absolute URL (got "${x}")`);
      }
      if (!schemes.includes(u.protocol.slice(0, -1))) invalid(path, `must use ${schemes.join(" or ")}`);
      return x.replace(/\/+$/, "");
    };
  },
  /**
   * Where to listen: `"127.0.0.1:8008"`, `"[::1]:8008"`, `":8008"` or a bare port → {host, port}.
   * A missing host means 127.0.0.1.
   */
  listen(): Validator<{ host: string; port: number }> {
    return (x, path = "value") => {
      const s = typeof x === "number" ? `:${x}` : x;
      if (typeof s !== "string") invalid(path, "must be host:port or a port");
      const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*))?:?(\d{1,5})$/.exec(s.trim());
      const port = m ? Number(m[3]) : NaN;
      if (!m || port > 65535) return invalid(path, `must be host:port or a port (got "${s}")`);
      return { host: m[1] ?? (m[2] || "127.0.0.1"), port };
    };
  },
  /** A map of server name → base URL (`identity_servers.map`, `homeservers`). */
  baseUrlMap(): Validator<Record<string, string>> {
    return v.record(c.url());
  },
  /** A value that is `fallback` when absent. */
  default<T>(inner: Validator<T>, fallback: NoInfer<T> | string): Validator<T> {
    return (x, path = "value") => (x === undefined ? inner(fallback, path) : inner(x, path));
  },
  /** Booleans, also from `"true"`/`"false"`/`"1"`/`"0"`/`"yes"`/`"no"` (environment strings). */
  boolean(): Validator<boolean> {
    return (x, path = "value") => {
      if (typeof x === "boolean") return x;
      if (typeof x === "string") {
        const s = x.trim().toLowerCase();
        if (["true", "1", "yes", "on"].includes(s)) return true;
        if (["false", "0", "no", "off"].includes(s)) return false;
      }
      return invalid(path, "must be true or false");
    };
  },
};

/** `{per_second, burst}` for one rate-limited action, with defaults. */
export function rateLimitSetting(defaults: { perSecond: number; burst: number }): { per_second: Validator<number>; burst: Validator<number> } {
  return {
    per_second: c.default(v.refine(c.number(), (n) => n > 0, "must be greater than 0"), String(defaults.perSecond)),
    burst: c.default(c.number({ min: 1 }), String(defaults.burst)),
  };
}

/** The `outbound` section both servers share (DECISIONS.md). */
export const outboundSection = {
  /** Allow requests to private/loopback addresses (development only). */
  allow_private: c.default(c.boolean(), "false"),
  /** Test only: skip TLS certificate checks (logged loudly at start). */
  insecure_skip_tls_verify: c.default(c.boolean(), "false"),
  timeout: c.default(c.duration({ min: 1 }), "10s"),
  max_response_size: c.default(c.size({ min: 1 }), "1MiB"),
} satisfies ConfigShape;

// ---------------------------------------------------------------------------------------
// Loading

type Raw = Record<string, unknown>;

function isPlainObject(x: unknown): x is Raw {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isShape(f: ConfigField): f is ConfigShape {
  return typeof f !== "function";
}

function deepMerge(base: Raw, over: Raw): Raw {
  const out: Raw = { ...base };
  for (const [k, val] of Object.entries(over)) {
    if (val === undefined) continue;
    const prev = out[k];
    out[k] = isPlainObject(prev) && isPlainObject(val) ? deepMerge(prev, val) : val;
  }
  return out;
}

function deepFreeze<T>(x: T): T {
  if (typeof x === "object" && x !== null && !Object.isFrozen(x)) {
    Object.freeze(x);
    for (const val of Object.values(x)) deepFreeze(val);
  }
  return x;
}

/** A value that came from the environment: the raw string, tried as-is first. */
class EnvValue {
  constructor(
    readonly name: string,
    readonly raw: string,
  ) {}
}

function describe(e: unknown): string {
  if (isMatrixError(e) || e instanceof Error) return e.message;
  return String(e);
}

function runLeaf(validator: Validator<unknown>, value: unknown, path: string, problems: string[]): unknown {
  if (value instanceof EnvValue) {
    try {
      return validator(value.raw, path);
    } catch (first) {
      let parsed: unknown;
      try {
        parsed = parseYaml(value.raw);
      } catch {
        problems.push(`${value.name}: ${describe(first)}`);
        return undefined;
      }
      try {
        return validator(parsed === null ? undefined : parsed, path);
      } catch (e) {
        problems.push(`${value.name}: ${describe(e)}`);
        return undefined;
      }
    }
  }
  try {
    return validator(value, path);
  } catch (e) {
    if (value === undefined) {
      // A required setting is missing: say so rather than "must be a string".
      problems.push(`${path}: required setting is missing`);
    } else {
      problems.push(describe(e));
    }
    return undefined;
  }
}

/** Turns EnvValues inside a plain value (e.g. one map entry set from env) into their strings. */
function unwrapEnv(x: unknown): unknown {
  if (x instanceof EnvValue) return x.raw;
  if (isPlainObject(x)) return Object.fromEntries(Object.entries(x).map(([k, val]) => [k, unwrapEnv(val)]));
  return x;
}

function validateShape(shape: ConfigShape, raw: unknown, path: string, problems: string[]): Raw {
  const out: Raw = {};
  if (raw !== undefined && !isPlainObject(raw)) {
    problems.push(`${path || "config"}: must be a mapping (key: value)`);
    raw = {};
  }
  const obj = (raw ?? {}) as Raw;
  for (const key of Object.keys(obj)) {
    if (!Object.prototype.hasOwnProperty.call(shape, key)) {
      const val = obj[key];
      problems.push(val instanceof EnvValue ? `${val.name}: unknown setting ${path ? `${path}.` : ""}${key}` : `${path ? `${path}.` : ""}${key}: unknown setting`);
    }
  }
  for (const [key, field] of Object.entries(shape)) {
    const childPath = path ? `${path}.${key}` : key;
    const val = obj[key];
    const result = isShape(field)
      ? validateShape(field, val instanceof EnvValue ? runLeaf(v.anyObject(), val, childPath, problems) : val, childPath, problems)
      : runLeaf(field, val instanceof EnvValue ? val : unwrapEnv(val), childPath, problems);
    if (result !== undefined) out[key] = result;
  }
  return out;
}

function envTree(env: Record<string, string | undefined>, prefix: string, ignore: string[]): Raw {
  let tree: Raw = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(prefix) || value === undefined) continue;
    const rest = name.slice(prefix.length);
    if (ignore.includes(rest)) continue;
    const parts = rest.toLowerCase().split("__");
    let leaf: unknown = new EnvValue(name, value);
    for (let i = parts.length - 1; i >= 0; i--) leaf = { [parts[i] ?? ""]: leaf };
    tree = deepMerge(tree, leaf as Raw);
  }
  return tree;
}

/**
 * Reads, merges (file < env < overrides), validates and freezes a configuration.
 * Throws {@link ConfigError} listing every problem.
 */
export function loadConfig<T>(spec: ConfigSpec<T>, options: LoadConfigOptions): T {
  const problems: string[] = [];
  let fromFile: Raw = {};
  if (options.file !== undefined) {
    let text: string | undefined;
    try {
      text = readFileSync(options.file, "utf8");
    } catch (e) {
      problems.push(`cannot read config file ${options.file}: ${(e as NodeJS.ErrnoException).code ?? describe(e)}`);
    }
    if (text !== undefined) {
      try {
        const doc: unknown = parseYaml(text, { uniqueKeys: true });
        if (doc === null || doc === undefined) fromFile = {};
        else if (isPlainObject(doc)) fromFile = doc;
        else problems.push(`${options.file}: the top level must be a mapping`);
      } catch (e) {
        problems.push(`${options.file}: not valid YAML: ${describe(e)}`);
      }
    }
  }
  const fromEnv = envTree(options.env ?? {}, options.envPrefix, options.envIgnore ?? ["CONFIG"]);
  const merged = deepMerge(deepMerge(fromFile, fromEnv), (options.overrides ?? {}) as Raw);
  const result = validateShape(spec.shape, merged, "", problems);
  if (problems.length > 0) throw new ConfigError(problems, options.file);
  return deepFreeze(result) as T;
}
