/**
 * A tiny validator kit for JSON request and response bodies. Each validator narrows
 * `unknown` to a type or throws a {@link MatrixError} (`M_MISSING_PARAM`, `M_INVALID_PARAM`,
 * `M_BAD_JSON`) naming the offending field, so servers can return it as-is.
 *
 * @example
 * const body = v.object({ medium: v.string(), address: v.string({ maxLength: 512 }), reason: v.optional(v.string()) });
 * const parsed = body(await request.json(), "body"); // { medium: string; address: string; reason?: string }
 */
import { MatrixError } from "./errors.js";
import { isJsonObject } from "./canonical-json.js";

/** Narrows `value` (found at `path`) to `T` or throws a MatrixError. */
export type Validator<T> = (value: unknown, path?: string) => T;
/** The type a validator produces. */
export type Infer<V> = V extends Validator<infer T> ? T : never;

const OPTIONAL = Symbol("optional");
interface OptionalValidator<T> extends Validator<T | undefined> {
  [OPTIONAL]: true;
}

/** Sets an own property, also for the key `__proto__` (a plain assignment would set the prototype). */
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

function bad(path: string, what: string): never {
  throw new MatrixError("M_INVALID_PARAM", `${path}: ${what}`);
}

export const v = {
  string(opts: { minLength?: number; maxLength?: number; pattern?: RegExp } = {}): Validator<string> {
    return (x, path = "value") => {
      if (typeof x !== "string") bad(path, "must be a string");
      if (opts.minLength !== undefined && x.length < opts.minLength) bad(path, `must be at least ${opts.minLength} characters`);
      if (opts.maxLength !== undefined && x.length > opts.maxLength) bad(path, `must be at most ${opts.maxLength} characters`);
      if (opts.pattern && !opts.pattern.test(x)) bad(path, "has an invalid format");
      return x;
    };
  },
  integer(opts: { min?: number; max?: number } = {}): Validator<number> {
    return (x, path = "value") => {
      if (typeof x !== "number" || !Number.isSafeInteger(x)) bad(path, "must be an integer");
      if (opts.min !== undefined && x < opts.min) bad(path, `must be ≥ ${opts.min}`);
      if (opts.max !== undefined && x > opts.max) bad(path, `must be ≤ ${opts.max}`);
      return x;
    };
  },
  /** An integer sent as a number or a numeric string (matrix-js-sdk sends `send_attempt` as a string). */
  looseInteger(opts: { min?: number; max?: number } = {}): Validator<number> {
    const int = v.integer(opts);
    return (x, path = "value") => int(typeof x === "string" && /^-?\d{1,15}$/.test(x) ? Number(x) : x, path);
  },
  boolean(): Validator<boolean> {
    return (x, path = "value") => (typeof x === "boolean" ? x : bad(path, "must be a boolean"));
  },
  literal<const T extends string | number | boolean>(...allowed: T[]): Validator<T> {
    return (x, path = "value") => ((allowed as unknown[]).includes(x) ? (x as T) : bad(path, `must be one of ${allowed.join(", ")}`));
  },
  array<T>(item: Validator<T>, opts: { maxItems?: number; minItems?: number } = {}): Validator<T[]> {
    return (x, path = "value") => {
      if (!Array.isArray(x)) bad(path, "must be an array");
      if (opts.maxItems !== undefined && x.length > opts.maxItems) bad(path, `must have at most ${opts.maxItems} items`);
      if (opts.minItems !== undefined && x.length < opts.minItems) bad(path, `must have at least ${opts.minItems} items`);
      return x.map((e, i) => item(e, `${path}[${i}]`));
    };
  },
  /** Any JSON object (contents unchecked). As a whole body (path `body`), a non-object is `M_BAD_JSON`. */
  anyObject(): Validator<Record<string, unknown>> {
    return (x, path = "body") => {
      if (isJsonObject(x)) return x;
      if (path === "body") throw new MatrixError("M_BAD_JSON", "body: must be a JSON object");
      return bad(path, "must be an object");
    };
  },
  /** A map with string keys and validated values. */
  record<T>(value: Validator<T>): Validator<Record<string, T>> {
    return (x, path = "value") => {
      if (!isJsonObject(x)) bad(path, "must be an object");
      const out: Record<string, T> = {};
      for (const [k, val] of Object.entries(x)) setOwn(out, k, value(val, `${path}.${k}`));
      return out;
    };
  },
  /** Any JSON value. */
  unknown(): Validator<unknown> {
    return (x) => x;
  },
  optional<T>(inner: Validator<T>): OptionalValidator<T> {
    const f = ((x: unknown, path?: string) => (x === undefined ? undefined : inner(x, path))) as OptionalValidator<T>;
    f[OPTIONAL] = true;
    return f;
  },
  /** Like optional, but also accepts `null` (as absent). */
  nullable<T>(inner: Validator<T>): OptionalValidator<T> {
    const f = ((x: unknown, path?: string) => (x === undefined || x === null ? undefined : inner(x, path))) as OptionalValidator<T>;
    f[OPTIONAL] = true;
    return f;
  },
  /**
   * An object with the given fields; unknown fields are kept (Matrix bodies are extensible).
   * A missing required field → `M_MISSING_PARAM`; a non-object → `M_BAD_JSON`.
   */
  object<S extends Record<string, Validator<unknown>>>(shape: S): Validator<ObjectOf<S>> {
    return (x, path = "body") => {
      if (!isJsonObject(x)) throw new MatrixError("M_BAD_JSON", `${path}: must be a JSON object`);
      const out: Record<string, unknown> = { ...x };
      for (const [key, val] of Object.entries(shape)) {
        const fieldPath = path === "body" ? key : `${path}.${key}`;
        const present = Object.prototype.hasOwnProperty.call(x, key) && x[key] !== undefined;
        if (!present && !(OPTIONAL in val)) throw new MatrixError("M_MISSING_PARAM", `Missing parameter: ${fieldPath}`);
        const result = val(x[key], fieldPath);
        if (result === undefined) delete out[key];
        else setOwn(out, key, result);
      }
      return out as ObjectOf<S>;
    };
  },
  /**
   * A union: `choose` looks at the raw value and picks the validator to apply (e.g. the two
   * body forms of `rooms/{roomId}/invite`).
   */
  select<T>(choose: (x: unknown) => Validator<T>): Validator<T> {
    return (x, path) => choose(x)(x, path);
  },
  /** A query parameter that may repeat (`?via=a&via=b`): one string or an array of strings → array. */
  stringList(opts: { maxItems?: number; maxLength?: number } = {}): Validator<string[]> {
    const one = v.string(opts.maxLength === undefined ? {} : { maxLength: opts.maxLength });
    const many = v.array(one, opts.maxItems === undefined ? {} : { maxItems: opts.maxItems });
    return (x, path = "value") => (typeof x === "string" ? [one(x, path)] : many(x, path));
  },
  /** Maps a validated value (e.g. a string to a branded identifier). */
  map<T, U>(inner: Validator<T>, f: (t: T, path: string) => U): Validator<U> {
    return (x, path = "value") => f(inner(x, path), path);
  },
  /** Applies a custom check after an inner validator. */
  refine<T>(inner: Validator<T>, check: (t: T) => boolean, message: string, errcode = "M_INVALID_PARAM"): Validator<T> {
    return (x, path = "value") => {
      const t = inner(x, path);
      if (!check(t)) throw new MatrixError(errcode, `${path}: ${message}`);
      return t;
    };
  },
};

type OptionalKeys<S> = { [K in keyof S]: S[K] extends OptionalValidator<unknown> ? K : never }[keyof S];
type RequiredKeys<S> = Exclude<keyof S, OptionalKeys<S>>;
type ObjectOf<S extends Record<string, Validator<unknown>>> = {
  [K in RequiredKeys<S>]: Infer<S[K]>;
} & {
  [K in OptionalKeys<S>]?: Exclude<Infer<S[K]>, undefined>;
} & Record<string, unknown>;
