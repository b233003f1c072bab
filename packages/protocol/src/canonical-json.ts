/**
 * Canonical JSON and strict JSON parsing
 * (https://spec.matrix.org/v1.18/appendices/#canonical-json).
 *
 * Canonical JSON: object keys sorted by Unicode code point, no insignificant
 * whitespace, integers only within ±(2^53 − 1), no floats, strings emitted as
 * UTF-8 with only the escapes JSON requires.
 *
 * @example
 * encodeCanonicalJson({ b: 1, a: "é" }) // '{"a":"é","b":1}'
 */

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
/** A JSON object. */
export interface JsonObject {
  [key: string]: JsonValue;
}

/** The largest integer canonical JSON allows: 2^53 − 1. */
export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER;
/** The smallest integer canonical JSON allows: −(2^53 − 1). */
export const MIN_SAFE_INTEGER = Number.MIN_SAFE_INTEGER;

/** Thrown when a value cannot be represented as canonical JSON. */
export class CanonicalJsonError extends TypeError {
  override name = "CanonicalJsonError";
}

/** Compares two strings by Unicode code point (not UTF-16 code unit, which differs above U+FFFF). */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800–0xDFFF) encode code points above 0xFFFF and so sort after
    // every BMP character, including 0xE000–0xFFFF.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** Matches a surrogate that is not part of a pair (in `u` mode, pairs are one code point). */
const LONE_SURROGATE = /\p{Cs}/u;
/** Any surrogate: keys without one sort the same by code unit as by code point. */
const ANY_SURROGATE = /[\uD800-\uDFFF]/;

function encodeString(s: string): string {
  if (LONE_SURROGATE.test(s)) throw new CanonicalJsonError("string contains a lone surrogate");
  // JSON.stringify escapes exactly `"`, `\` and U+0000–U+001F (short forms where JSON has
  // them, else \u00xx in lower case), which is what the canonical grammar asks for.
  return JSON.stringify(s);
}

/**
 * Sorts keys by code point. The default sort compares UTF-16 code units, which gives the same
 * order unless a key holds a surrogate (a code point above U+FFFF): only then use the slower
 * comparator.
 */
function sortKeys(keys: string[]): string[] {
  for (const k of keys) if (ANY_SURROGATE.test(k)) return keys.sort(compareCodePoints);
  return keys.sort();
}

function encodeValue(value: unknown, depth: number, skipTopLevel?: ReadonlySet<string>): string {
  if (depth > 512) throw new CanonicalJsonError("value nested too deeply");
  switch (typeof value) {
    case "string":
      return encodeString(value);
    case "number":
      if (!Number.isInteger(value)) throw new CanonicalJsonError(`not an integer: ${String(value)}`);
      if (value > MAX_SAFE_INTEGER || value < MIN_SAFE_INTEGER) {
        throw new CanonicalJsonError(`integer out of range: ${String(value)}`);
      }
      return Object.is(value, -0) ? "0" : String(value);
    case "boolean":
      return value ? "true" : "false";
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ",";
          out += encodeValue(value[i], depth + 1);
        }
        return out + "]";
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new CanonicalJsonError("only plain objects can be encoded");
      }
      const obj = value as Record<string, unknown>;
      const keys = sortKeys(Object.keys(obj));
      let out = "{";
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue; // like JSON.stringify: absent
        if (skipTopLevel !== undefined && skipTopLevel.has(k)) continue;
        if (!first) out += ",";
        first = false;
        out += encodeString(k) + ":" + encodeValue(v, depth + 1);
      }
      return out + "}";
    }
    default:
      throw new CanonicalJsonError(`cannot encode a ${typeof value}`);
  }
}

/** Thrown inside the fast path when an object has an array-index key (see {@link sortedCopy}). */
class NeedsSlowPath {}
const NEEDS_SLOW_PATH = new NeedsSlowPath();
/** Keys that JS objects enumerate first, in numeric order, whatever the insertion order. */
const INDEX_LIKE_KEY = /^(?:0|[1-9][0-9]{0,9})$/;

/**
 * Fast path: a copy of `value` with object keys inserted in canonical order, checked like
 * {@link encodeValue}, for the native `JSON.stringify` to print (its escaping is the canonical
 * one). JS objects enumerate array-index keys (`"0"`, `"12"`) before all others, so an object
 * with such a key sends the whole value down the slow path.
 */
function sortedCopy(value: unknown, depth: number, skipTopLevel?: ReadonlySet<string>): unknown {
  if (depth > 512) throw new CanonicalJsonError("value nested too deeply");
  switch (typeof value) {
    case "string":
      if (LONE_SURROGATE.test(value)) throw new CanonicalJsonError("string contains a lone surrogate");
      return value;
    case "number":
      if (!Number.isInteger(value)) throw new CanonicalJsonError(`not an integer: ${String(value)}`);
      if (value > MAX_SAFE_INTEGER || value < MIN_SAFE_INTEGER) throw new CanonicalJsonError(`integer out of range: ${String(value)}`);
      return value;
    case "boolean":
      return value;
    case "object": {
      if (value === null) return null;
      if (Array.isArray(value)) {
        const out = new Array<unknown>(value.length);
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined) throw new CanonicalJsonError("cannot encode a undefined");
          out[i] = sortedCopy(item, depth + 1);
        }
        return out;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) throw new CanonicalJsonError("only plain objects can be encoded");
      const obj = value as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const k of sortKeys(Object.keys(obj))) {
        const v = obj[k];
        if (v === undefined) continue;
        if (skipTopLevel !== undefined && skipTopLevel.has(k)) continue;
        if (INDEX_LIKE_KEY.test(k)) throw NEEDS_SLOW_PATH;
        if (LONE_SURROGATE.test(k)) throw new CanonicalJsonError("string contains a lone surrogate");
        const copy = sortedCopy(v, depth + 1);
        if (k === "__proto__") Object.defineProperty(out, k, { value: copy, enumerable: true, writable: true, configurable: true });
        else out[k] = copy;
      }
      return out;
    }
    default:
      throw new CanonicalJsonError(`cannot encode a ${typeof value}`);
  }
}

function encode(value: unknown, skipTopLevel?: ReadonlySet<string>): string {
  try {
    return JSON.stringify(sortedCopy(value, 0, skipTopLevel));
  } catch (e) {
    if (e === NEEDS_SLOW_PATH) return encodeValue(value, 0, skipTopLevel);
    throw e;
  }
}

/**
 * Encodes `value` as canonical JSON. Throws {@link CanonicalJsonError} for floats,
 * NaN/Infinity, integers beyond ±(2^53 − 1), lone surrogates, and non-JSON values.
 * Object properties whose value is `undefined` are omitted, as `JSON.stringify` does.
 *
 * @example
 * encodeCanonicalJson({ b: [1, true], a: { "\u{1F600}": null, z: "x" } }) // '{"a":{"z":"x","😀":null},"b":[1,true]}'
 * encodeCanonicalJson({ n: 1.5 }) // throws CanonicalJsonError
 */
export function encodeCanonicalJson(value: unknown): string {
  return encode(value);
}

/**
 * Canonical JSON of an object without some of its top-level keys, without copying it
 * (e.g. `signatures` and `unsigned` for signing).
 *
 * @example
 * encodeCanonicalJsonWithout({ b: 1, unsigned: { age: 1 } }, new Set(["unsigned"])) // '{"b":1}'
 */
export function encodeCanonicalJsonWithout(value: Record<string, unknown>, omitKeys: ReadonlySet<string>): string {
  return encode(value, omitKeys);
}

/** Options for {@link parseJson}. */
export interface ParseJsonOptions {
  /** Accept numbers with a fraction or exponent (default: false, as canonical JSON requires). */
  allowFloats?: boolean;
  /** Maximum nesting of arrays and objects (default 100). */
  maxDepth?: number;
}

/** Thrown by {@link parseJson} with the offset where parsing failed. */
export class JsonParseError extends SyntaxError {
  override name = "JsonParseError";
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} at position ${position}`);
  }
}

/**
 * Parses JSON text strictly: rejects duplicate object keys, integers outside
 * ±(2^53 − 1), floats (unless `allowFloats`), lone surrogates (raw or escaped),
 * and nesting deeper than `maxDepth`. Returns `unknown`: narrow it with a validator.
 *
 * @example
 * parseJson('{"a":1}') // { a: 1 }
 * parseJson('{"a":1,"a":2}') // throws JsonParseError (duplicate key)
 */
export function parseJson(text: string, options: ParseJsonOptions = {}): unknown {
  const p = new Parser(text, options.allowFloats ?? false, options.maxDepth ?? 100);
  p.skipWs();
  const v = p.value(0);
  p.skipWs();
  if (p.i !== text.length) p.fail("unexpected trailing characters");
  return v;
}

class Parser {
  i = 0;
  constructor(
    readonly s: string,
    readonly allowFloats: boolean,
    readonly maxDepth: number,
  ) {}

  fail(msg: string): never {
    throw new JsonParseError(msg, this.i);
  }

  skipWs(): void {
    const s = this.s;
    let i = this.i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 32 || c === 10 || c === 13 || c === 9) i++;
      else break;
    }
    this.i = i;
  }

  value(depth: number): unknown {
    const c = this.s.charCodeAt(this.i);
    switch (c) {
      case 123: // {
        return this.object(depth + 1);
      case 91: // [
        return this.array(depth + 1);
      case 34: // "
        return this.string();
      case 116: // t
        return this.literal("true", true);
      case 102: // f
        return this.literal("false", false);
      case 110: // n
        return this.literal("null", null);
      default:
        if (c === 45 || (c >= 48 && c <= 57)) return this.number();
        return this.fail(Number.isNaN(c) ? "unexpected end of input" : "unexpected character");
    }
  }

  literal<T>(word: string, v: T): T {
    if (this.s.startsWith(word, this.i)) {
      this.i += word.length;
      return v;
    }
    return this.fail("invalid literal");
  }

  number(): number {
    const s = this.s;
    const start = this.i;
    let i = start;
    if (s.charCodeAt(i) === 45) i++;
    const d0 = s.charCodeAt(i);
    if (d0 === 48) i++;
    else if (d0 >= 49 && d0 <= 57) {
      while (s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
    } else {
      this.i = i;
      return this.fail("invalid number");
    }
    let isFloat = false;
    if (s.charCodeAt(i) === 46) {
      isFloat = true;
      i++;
      const f = i;
      while (s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
      if (i === f) {
        this.i = i;
        return this.fail("invalid number");
      }
    }
    const e = s.charCodeAt(i);
    if (e === 101 || e === 69) {
      isFloat = true;
      i++;
      const sign = s.charCodeAt(i);
      if (sign === 43 || sign === 45) i++;
      const f = i;
      while (s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
      if (i === f) {
        this.i = i;
        return this.fail("invalid number");
      }
    }
    const n = Number(s.slice(start, i));
    if (isFloat && !this.allowFloats) {
      this.i = start;
      return this.fail("floats are not allowed");
    }
    if (!Number.isFinite(n) || (Number.isInteger(n) && (n > MAX_SAFE_INTEGER || n < MIN_SAFE_INTEGER))) {
      this.i = start;
      return this.fail("number out of range");
    }
    this.i = i;
    return n;
  }

  string(): string {
    const s = this.s;
    let i = this.i + 1;
    let out = "";
    let chunk = i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 34) break;
      if (Number.isNaN(c)) {
        this.i = i;
        return this.fail("unterminated string");
      }
      if (c < 0x20) {
        this.i = i;
        return this.fail("control character in string");
      }
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = s.charCodeAt(i + 1);
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          i += 2;
          continue;
        }
        this.i = i;
        return this.fail("lone surrogate in string");
      }
      if (c !== 92) {
        i++;
        continue;
      }
      out += s.slice(chunk, i);
      const esc = s.charCodeAt(i + 1);
      i += 2;
      switch (esc) {
        case 34: out += '"'; break;
        case 92: out += "\\"; break;
        case 47: out += "/"; break;
        case 98: out += "\b"; break;
        case 102: out += "\f"; break;
        case 110: out += "\n"; break;
        case 114: out += "\r"; break;
        case 116: out += "\t"; break;
        case 117: {
          const cu = this.hex4(i);
          i += 4;
          if (cu >= 0xd800 && cu <= 0xdbff) {
            if (s.charCodeAt(i) === 92 && s.charCodeAt(i + 1) === 117) {
              const lo = this.hex4(i + 2);
              if (lo >= 0xdc00 && lo <= 0xdfff) {
                out += String.fromCharCode(cu, lo);
                i += 6;
                break;
              }
            }
            this.i = i;
            return this.fail("lone surrogate escape");
          }
          if (cu >= 0xdc00 && cu <= 0xdfff) {
            this.i = i;
            return this.fail("lone surrogate escape");
          }
          out += String.fromCharCode(cu);
          break;
        }
        default:
          this.i = i - 1;
          return this.fail("invalid escape");
      }
      chunk = i;
    }
    out += s.slice(chunk, i);
    this.i = i + 1;
    return out;
  }

  hex4(at: number): number {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = this.s.charCodeAt(at + k);
      let d: number;
      if (c >= 48 && c <= 57) d = c - 48;
      else if (c >= 97 && c <= 102) d = c - 87;
      else if (c >= 65 && c <= 70) d = c - 55;
      else {
        this.i = at + k;
        return this.fail("invalid unicode escape");
      }
      v = (v << 4) | d;
    }
    return v;
  }

  array(depth: number): unknown[] {
    if (depth > this.maxDepth) this.fail("nested too deeply");
    this.i++;
    const out: unknown[] = [];
    this.skipWs();
    if (this.s.charCodeAt(this.i) === 93) {
      this.i++;
      return out;
    }
    for (;;) {
      this.skipWs();
      out.push(this.value(depth));
      this.skipWs();
      const c = this.s.charCodeAt(this.i);
      if (c === 44) {
        this.i++;
        continue;
      }
      if (c === 93) {
        this.i++;
        return out;
      }
      return this.fail("expected , or ]");
    }
  }

  object(depth: number): Record<string, unknown> {
    if (depth > this.maxDepth) this.fail("nested too deeply");
    this.i++;
    const out: Record<string, unknown> = {};
    this.skipWs();
    if (this.s.charCodeAt(this.i) === 125) {
      this.i++;
      return out;
    }
    for (;;) {
      this.skipWs();
      if (this.s.charCodeAt(this.i) !== 34) this.fail("expected a string key");
      const keyAt = this.i;
      const key = this.string();
      if (Object.prototype.hasOwnProperty.call(out, key)) {
        this.i = keyAt;
        this.fail(`duplicate key ${JSON.stringify(key)}`);
      }
      this.skipWs();
      if (this.s.charCodeAt(this.i) !== 58) this.fail("expected :");
      this.i++;
      this.skipWs();
      const v = this.value(depth);
      // "__proto__" is ordinary data in JSON: keep it as an own property, never a prototype.
      if (key === "__proto__") Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
      else out[key] = v;
      this.skipWs();
      const c = this.s.charCodeAt(this.i);
      if (c === 44) {
        this.i++;
        continue;
      }
      if (c === 125) {
        this.i++;
        return out;
      }
      return this.fail("expected , or }");
    }
  }
}

/** True for a non-null, non-array object (the shape of a JSON object after parsing). */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
