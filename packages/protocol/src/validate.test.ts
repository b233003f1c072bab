import { test } from "node:test";
import assert from "node:assert/strict";
import { isMatrixError } from "./errors.js";
import { parseJson } from "./canonical-json.js";
import { v } from "./validate.js";

function fails(f: () => unknown, errcode: string, message?: RegExp): void {
  assert.throws(f, (e: unknown) => isMatrixError(e) && e.errcode === errcode && (message === undefined || message.test(e.message)));
}

test("object: missing → M_MISSING_PARAM, wrong type → M_INVALID_PARAM, not an object → M_BAD_JSON; extra fields kept", () => {
  const body = v.object({ a: v.string(), n: v.optional(v.integer({ min: 1 })), inner: v.optional(v.object({ x: v.boolean() })) });
  assert.deepEqual(body({ a: "x", extra: [1] }), { a: "x", extra: [1] });
  fails(() => body({}), "M_MISSING_PARAM", /Missing parameter: a/);
  fails(() => body({ a: 1 }), "M_INVALID_PARAM", /^a: must be a string/);
  fails(() => body({ a: "x", n: 0 }), "M_INVALID_PARAM", /n: must be ≥ 1/);
  fails(() => body({ a: "x", n: 1.5 }), "M_INVALID_PARAM");
  fails(() => body({ a: "x", inner: { x: "no" } }), "M_INVALID_PARAM", /^inner\.x:/);
  fails(() => body({ a: "x", inner: {} }), "M_MISSING_PARAM", /inner\.x/);
  for (const bad of [null, [], "x", 1]) fails(() => body(bad), "M_BAD_JSON");
  assert.equal(Object.prototype.hasOwnProperty.call(body({ a: "x", n: undefined }), "n"), false);
});

test("nullable treats null as absent; looseInteger takes numeric strings", () => {
  const body = v.object({ s: v.nullable(v.string()), i: v.looseInteger({ min: 0 }) });
  assert.deepEqual(body({ s: null, i: "12" }), { i: 12 });
  fails(() => body({ i: "1.5" }), "M_INVALID_PARAM");
  fails(() => body({ i: "1e3" }), "M_INVALID_PARAM");
  fails(() => body({ i: "-1" }), "M_INVALID_PARAM");
  fails(() => body({ i: "" }), "M_INVALID_PARAM");
  fails(() => body({ i: true }), "M_INVALID_PARAM");
});

test("string, literal, array, record, stringList, select, refine, map", () => {
  fails(() => v.string({ maxLength: 2 })("abc"), "M_INVALID_PARAM");
  fails(() => v.string({ minLength: 1 })(""), "M_INVALID_PARAM");
  fails(() => v.string({ pattern: /^a+$/ })("ab"), "M_INVALID_PARAM");
  assert.equal(v.literal("a", "b")("b"), "b");
  fails(() => v.literal("a", "b")("c"), "M_INVALID_PARAM");
  fails(() => v.array(v.integer(), { maxItems: 1 })([1, 2]), "M_INVALID_PARAM");
  fails(() => v.array(v.integer())([1, "2"]), "M_INVALID_PARAM", /value\[1\]/);
  assert.deepEqual(v.stringList()("a"), ["a"]);
  assert.deepEqual(v.stringList()(["a", "b"]), ["a", "b"]);
  fails(() => v.stringList({ maxItems: 1 })(["a", "b"]), "M_INVALID_PARAM");
  const either = v.select<string | number>((x) => (typeof x === "string" ? v.string() : v.integer()));
  assert.equal(either("s"), "s");
  assert.equal(either(3), 3);
  fails(() => v.refine(v.string(), (s) => s.startsWith("@"), "must be a user")("x"), "M_INVALID_PARAM", /must be a user/);
  fails(() => v.refine(v.string(), () => false, "x", "M_FORBIDDEN")("x"), "M_FORBIDDEN");
  assert.equal(v.map(v.string(), (s) => s.length)("abc"), 3);
  assert.deepEqual(v.record(v.integer())({ a: 1 }), { a: 1 });
  fails(() => v.record(v.integer())({ a: "1" }), "M_INVALID_PARAM", /value\.a/);
});

test("record and object never turn __proto__ into a prototype", () => {
  const input = parseJson('{"__proto__":{"polluted":true},"a":{"x":1}}');
  const rec = v.record(v.anyObject())(input);
  assert.equal(Object.getPrototypeOf(rec), Object.prototype);
  assert.equal((rec as { polluted?: unknown }).polluted, undefined);
  assert.deepEqual(Object.keys(rec), ["__proto__", "a"]);
  const obj = v.object({ __proto__: v.optional(v.anyObject()) } as Record<string, ReturnType<typeof v.anyObject>>)(input);
  assert.equal((obj as { polluted?: unknown }).polluted, undefined);
  assert.equal(Object.getPrototypeOf(obj), Object.prototype);
});
