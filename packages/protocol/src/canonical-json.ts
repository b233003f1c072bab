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

export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER; // 2^53 - 1
export const MIN_SAFE_INTEGER = Number.MIN_SAFE_INTEGER; // -(2^53 - 1)

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

function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    return true;
  }
  return false;
}

function encodeString(s: string): string {
  if (hasLoneSurrogate(s)) throw new CanonicalJsonError("string contains a lone surrogate");
  // JSON.stringify escapes exactly `"`, `\` and U+0000–U+001F (short forms where JSON has
  // them, else \u00xx in lower case), which is what the canonical grammar asks for.
  return JSON.stringify(s);
}

function encodeValue(value: unknown, depth: number): string {
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
      const keys = Object.keys(obj).sort(compareCodePoints);
      let out = "{";
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue; // like JSON.stringify: absent
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

/**
 * Encodes `value` as canonical JSON. Throws {@link CanonicalJsonError} for floats,
 * NaN/Infinity, integers beyond ±(2^53 − 1), lone surrogates, and non-JSON values.
 * Object properties whose value is `undefined` are omitted, as `JSON.stringify` does.
 */
export function encodeCanonicalJson(value: unknown): string {
  return encodeValue(value, 0);
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
