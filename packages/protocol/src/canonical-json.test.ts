import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { CanonicalJsonError, compareCodePoints, encodeCanonicalJson, JsonParseError, parseJson, type JsonValue } from "./canonical-json.js";

// ── encoding ─────────────────────────────────────────────────────────────────

test("spec appendix canonical JSON examples", () => {
  // https://spec.matrix.org/v1.18/appendices/#canonical-json (examples)
  const cases: [unknown, string][] = [
    [{}, "{}"],
    [{ one: 1, two: "Two" }, '{"one":1,"two":"Two"}'],
    [{ b: "2", a: "1" }, '{"a":"1","b":"2"}'],
    [
      {
        auth: {
          success: true,
          mxid: "@john.doe:example.com",
          profile: {
            display_name: "John Doe",
            three_pids: [
              { medium: "email", address: "john.doe@example.org" },
              { medium: "msisdn", address: "123456789" },
            ],
          },
        },
      },
      '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ],
    [{ a: "日本語" }, '{"a":"日本語"}'],
    [{ 本: 2, 日: 1 }, '{"日":1,"本":2}'],
    [{ a: "\u65E5" }, '{"a":"日"}'],
    [{ a: null }, '{"a":null}'],
    [{ a: -0, b: 1e10 }, '{"a":0,"b":10000000000}'],
  ];
  for (const [input, expected] of cases) assert.equal(encodeCanonicalJson(input), expected);
});

test("keys are ordered by code point, not UTF-16 code unit", () => {
  // U+1F600 is stored as the surrogates D83D DE00, which sort before U+E000..U+FFFF as code units.
  const obj = { "\u{1F600}": 3, "\uFFFD": 2, "\uE000": 1, z: 0 };
  assert.equal(encodeCanonicalJson(obj), '{"z":0,"\uE000":1,"\uFFFD":2,"\u{1F600}":3}');
  assert.ok(compareCodePoints("\u{1F600}", "\uFFFF") > 0);
  assert.ok(compareCodePoints("\uFFFF", "\u{10000}") < 0);
  assert.ok(compareCodePoints("\u{10000}", "\u{10001}") < 0);
  assert.ok(compareCodePoints("a", "ab") < 0);
  assert.equal(compareCodePoints("x\u{1F600}", "x\u{1F600}"), 0);
  // Sorted by code point when every key is BMP-only or mixed with supplementary characters.
  assert.equal(encodeCanonicalJson({ "\u{10000}a": 1, "\u{10000}": 2, "\uD7FF": 3 }), '{"\uD7FF":3,"\u{10000}":2,"\u{10000}a":1}');
});

test("strings escape only what JSON requires, in the canonical form", () => {
  assert.equal(encodeCanonicalJson("\u0000\u0001\u001f"), '"\\u0000\\u0001\\u001f"');
  assert.equal(encodeCanonicalJson('"\\'), '"\\"\\\\"');
  assert.equal(encodeCanonicalJson("\b\f\n\r\t"), '"\\b\\f\\n\\r\\t"');
  // DEL, slash, U+2028/2029, non-ASCII and astral characters are emitted as-is (UTF-8).
  assert.equal(encodeCanonicalJson("\u007f/\u2028\u2029é\u{1F600}"), '"\u007f/\u2028\u2029é\u{1F600}"');
  assert.equal(encodeCanonicalJson({ "a\nb": 1 }), '{"a\\nb":1}');
});

test("integers within ±(2^53 − 1) only; floats, NaN and infinities rejected", () => {
  assert.equal(encodeCanonicalJson(9007199254740991), "9007199254740991");
  assert.equal(encodeCanonicalJson(-9007199254740991), "-9007199254740991");
  assert.equal(encodeCanonicalJson([0, -1, 1e15]), "[0,-1,1000000000000000]");
  for (const bad of [9007199254740992, -9007199254740992, 2 ** 60, 1.5, -0.1, Number.NaN, Infinity, -Infinity, Number.EPSILON]) {
    assert.throws(() => encodeCanonicalJson({ n: bad }), CanonicalJsonError, String(bad));
  }
});

test("non-JSON values are rejected", () => {
  for (const bad of [undefined, () => 1, Symbol("x"), 1n, new Date(0), new Map(), new Uint8Array(2), [undefined], { a: [1, () => 1] }]) {
    assert.throws(() => encodeCanonicalJson(bad), CanonicalJsonError);
  }
  // Lone surrogates in values and keys.
  assert.throws(() => encodeCanonicalJson("\uD800"), CanonicalJsonError);
  assert.throws(() => encodeCanonicalJson("a\uDC00b"), CanonicalJsonError);
  assert.throws(() => encodeCanonicalJson({ "\uDBFF": 1 }), CanonicalJsonError);
  assert.throws(() => encodeCanonicalJson("\uDE00\uD83D"), CanonicalJsonError); // reversed pair
});

test("undefined properties are omitted, null-prototype objects accepted", () => {
  assert.equal(encodeCanonicalJson({ a: undefined, b: 1 }), '{"b":1}');
  const o = Object.create(null) as Record<string, unknown>;
  o.b = true;
  o.a = false;
  assert.equal(encodeCanonicalJson(o), '{"a":false,"b":true}');
});

test("deeply nested values are refused, not a stack overflow", () => {
  let deep: unknown = 1;
  for (let i = 0; i < 600; i++) deep = [deep];
  assert.throws(() => encodeCanonicalJson(deep), CanonicalJsonError);
  let ok: unknown = 1;
  for (let i = 0; i < 500; i++) ok = { a: ok };
  assert.ok(encodeCanonicalJson(ok).startsWith('{"a":{"a":'));
});

// ── strict parsing ───────────────────────────────────────────────────────────

function parseFails(text: string, re?: RegExp, opts?: Parameters<typeof parseJson>[1]): void {
  assert.throws(() => parseJson(text, opts), (e: unknown) => e instanceof JsonParseError && (re === undefined || re.test(e.message)), text);
}

test("parseJson accepts ordinary JSON with whitespace", () => {
  assert.deepEqual(parseJson(' { "a" : [ 1 , -2 , true , false , null , "x" ] ,\n\t"b":{}}\r\n'), { a: [1, -2, true, false, null, "x"], b: {} });
  assert.equal(parseJson('"\\u00e9\\/\\b\\f\\n\\r\\t\\"\\\\"'), "é/\b\f\n\r\t\"\\");
  assert.equal(parseJson('"\\ud83d\\ude00"'), "\u{1F600}");
  assert.equal(parseJson('"\u{1F600}"'), "\u{1F600}");
  assert.equal(parseJson("-0"), -0);
  assert.equal(parseJson("9007199254740991"), 9007199254740991);
  assert.equal(parseJson("-9007199254740991"), -9007199254740991);
});

test("parseJson rejects duplicate keys, also when spelled differently", () => {
  parseFails('{"a":1,"a":2}', /duplicate key/);
  parseFails('{"a":1,"\\u0061":2}', /duplicate key/);
  parseFails('{"x":{"b":1,"c":2,"b":3}}', /duplicate key/);
  assert.deepEqual(parseJson('{"a":{"a":1},"b":{"a":2}}'), { a: { a: 1 }, b: { a: 2 } });
});

test("parseJson rejects lone surrogates, raw and escaped", () => {
  parseFails('"\uD800"', /lone surrogate/);
  parseFails('"a\uDC00"', /lone surrogate/);
  parseFails('"\\ud800"', /lone surrogate/);
  parseFails('"\\udc00"', /lone surrogate/);
  parseFails('"\\ud800\\u0041"', /lone surrogate/);
  parseFails('"\\ud800x"', /lone surrogate/);
  parseFails('{"\\udfff":1}', /lone surrogate/);
});

test("parseJson rejects numbers out of range and floats (unless allowed)", () => {
  parseFails("9007199254740992", /out of range/);
  parseFails("-9007199254740992", /out of range/);
  parseFails("1" + "0".repeat(400), /out of range/);
  for (const f of ["1.0", "1e3", "1E+3", "-2.5e-3", "0.1"]) parseFails(f, /floats/);
  assert.equal(parseJson("1.5", { allowFloats: true }), 1.5);
  assert.equal(parseJson("1e3", { allowFloats: true }), 1000);
  parseFails("1e400", /out of range/, { allowFloats: true });
});

test("parseJson enforces a nesting limit", () => {
  assert.ok(Array.isArray(parseJson("[".repeat(100) + "]".repeat(100))));
  parseFails("[".repeat(101) + "]".repeat(101), /nested too deeply/);
  parseFails('{"a":'.repeat(101) + "1" + "}".repeat(101), /nested too deeply/);
  parseFails("[[[1]]]", /nested too deeply/, { maxDepth: 2 });
  parseFails("[".repeat(100000), /nested too deeply/);
});

test("parseJson keeps __proto__ as data, never as a prototype", () => {
  const v = parseJson('{"__proto__":{"polluted":1},"a":1}') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.equal((v as { polluted?: unknown }).polluted, undefined);
  assert.deepEqual(Object.keys(v), ["__proto__", "a"]);
  assert.deepEqual(Object.getOwnPropertyDescriptor(v, "__proto__")?.value, { polluted: 1 });
  assert.equal(({} as { polluted?: unknown }).polluted, undefined);
  assert.equal(encodeCanonicalJson(v), '{"__proto__":{"polluted":1},"a":1}');
  parseFails('{"__proto__":1,"__proto__":2}', /duplicate key/);
});

test("parseJson rejects malformed JSON with a position", () => {
  const bad = ["", " ", "{", "}", "[1,]", '{"a":1,}', "01", "-", "1.", ".5", "1e", "+1", "tru", "nul", "'a'", '{a:1}', '"abc', '"\\x"', '"\\u12G4"', '"a\u0001"', '"tab\there"', "[1 2]", '{"a" 1}', "1 2", "NaN", "Infinity", '{"a":1}x', "\u00a0 1"];
  for (const t of bad) parseFails(t);
  try {
    parseJson('{"a":tru}');
    assert.fail("no error");
  } catch (e) {
    assert.ok(e instanceof JsonParseError);
    assert.equal(e.position, 5);
  }
});

// ── properties ───────────────────────────────────────────────────────────────

const jsonKey = fc.string({ unit: "binary", maxLength: 8 });
const { json } = fc.letrec<{ json: JsonValue }>((tie) => ({
  json: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.maxSafeInteger(),
    fc.string({ unit: "binary", maxLength: 16 }),
    fc.array(tie("json"), { maxLength: 5 }),
    fc.dictionary(jsonKey, tie("json"), { maxKeys: 6, noNullPrototype: true }),
  ),
}));

/** An independent, obviously-correct reference encoder: entries sorted by code-point arrays. */
function reference(v: unknown): string {
  if (Array.isArray(v)) return "[" + v.map(reference).join(",") + "]";
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  const cp = (k: string) => Array.from(k, (c) => c.codePointAt(0)!);
  const entries = Object.entries(v).sort(([a], [b]) => {
    const x = cp(a);
    const y = cp(b);
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
    return x.length - y.length;
  });
  return "{" + entries.map(([k, x]) => JSON.stringify(k) + ":" + reference(x)).join(",") + "}";
}

test("property: parseJson(encodeCanonicalJson(x)) equals x, and the encoding is stable", () => {
  fc.assert(
    fc.property(json, (x) => {
      const text = encodeCanonicalJson(x);
      const back = parseJson(text);
      assert.deepEqual(back, x);
      assert.equal(encodeCanonicalJson(back), text);
      assert.deepEqual(JSON.parse(text), x); // valid JSON for any other parser
      assert.ok(!/[\n ]/.test(text.replace(/"(?:[^"\\]|\\.)*"/g, '""')), "insignificant whitespace");
    }),
    { numRuns: 500 },
  );
});

test("property: the encoding equals an independent reference encoder", () => {
  fc.assert(
    fc.property(json, (x) => encodeCanonicalJson(x) === reference(x)),
    { numRuns: 500 },
  );
});

test("property: compareCodePoints agrees with comparing code point arrays", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 6 }), fc.string({ unit: "binary", maxLength: 6 }), (a, b) => {
      const x = Array.from(a, (c) => c.codePointAt(0)!);
      const y = Array.from(b, (c) => c.codePointAt(0)!);
      let ref = 0;
      for (let i = 0; i < Math.min(x.length, y.length) && ref === 0; i++) ref = x[i]! - y[i]!;
      if (ref === 0) ref = x.length - y.length;
      return Math.sign(compareCodePoints(a, b)) === Math.sign(ref);
    }),
    { numRuns: 1000 },
  );
});

test("array-index-like keys keep code-point order (JS objects would reorder them)", () => {
  assert.equal(encodeCanonicalJson({ b: 1, "10": 2, "9": 3, a: { "2": 0, "1": 0, "01": 0 } }), '{"10":2,"9":3,"a":{"01":0,"1":0,"2":0},"b":1}');
  assert.equal(encodeCanonicalJson({ "4294967295": 1, "4294967294": 2, x: [{ "0": 1 }] }), '{"4294967294":2,"4294967295":1,"x":[{"0":1}]}');
  assert.throws(() => encodeCanonicalJson({ "1": 1.5 }), CanonicalJsonError);
  assert.throws(() => encodeCanonicalJson({ a: 1.5, "1": 1 }), CanonicalJsonError);
});

test("property: the fast and the slow encoder agree (keys drawn from digits)", () => {
  const digitKeys = fc.dictionary(fc.stringMatching(/^[0-9a]{1,3}$/), fc.oneof(fc.maxSafeInteger(), fc.string({ maxLength: 3 })), { maxKeys: 6, noNullPrototype: true });
  fc.assert(
    fc.property(fc.oneof(digitKeys, fc.record({ x: digitKeys, "1": digitKeys }, { noNullPrototype: true })), (x) => {
      const text = encodeCanonicalJson(x);
      assert.equal(text, reference(x));
      assert.deepEqual(parseJson(text), x);
    }),
    { numRuns: 300 },
  );
});
