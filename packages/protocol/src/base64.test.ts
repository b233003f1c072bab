import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeBase64, encodeBase64, encodeBase64Url, isBase64 } from "./base64.js";

const bytes = (...b: number[]) => new Uint8Array(b);

test("RFC 4648 vectors, unpadded", () => {
  const vectors: [string, string][] = [
    ["", ""],
    ["f", "Zg"],
    ["fo", "Zm8"],
    ["foo", "Zm9v"],
    ["foob", "Zm9vYg"],
    ["fooba", "Zm9vYmE"],
    ["foobar", "Zm9vYmFy"],
  ];
  for (const [plain, b64] of vectors) {
    const raw = new TextEncoder().encode(plain);
    assert.equal(encodeBase64(raw), b64);
    assert.deepEqual(decodeBase64(b64), raw);
    assert.deepEqual(decodeBase64(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), raw, "padded");
  }
});

test("the two alphabets", () => {
  const b = bytes(0xfb, 0xff, 0xbf);
  assert.equal(encodeBase64(b), "+/+/");
  assert.equal(encodeBase64Url(b), "-_-_");
  assert.deepEqual(decodeBase64("+/+/"), b);
  assert.deepEqual(decodeBase64("-_-_"), b);
  assert.deepEqual(decodeBase64("-/+_"), b, "mixed alphabets are tolerated");
  assert.deepEqual(decodeBase64("-_8"), bytes(0xfb, 0xff));
  assert.deepEqual(decodeBase64("-_8="), bytes(0xfb, 0xff));
});

test("invalid input is refused", () => {
  for (const bad of ["A", "AAAAA", "A===", "AA===", "AB=C", "=AAA", "AB C", "AB\nC", "AÿAA", "AA*A", "Zm9v=", "Zg=", "Zg===", "😀AA"]) {
    assert.throws(() => decodeBase64(bad), TypeError, JSON.stringify(bad));
    assert.equal(isBase64(bad), false);
  }
  assert.equal(isBase64("Zg=="), true);
  assert.equal(isBase64(""), true);
});

test("a 32-byte key and a 64-byte signature have the expected lengths", () => {
  assert.equal(encodeBase64(new Uint8Array(32)).length, 43);
  assert.equal(encodeBase64(new Uint8Array(64)).length, 86);
  assert.equal(decodeBase64("XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI").length, 32);
});

test("property: round trips in both alphabets, padded or not, match Buffer", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      const std = encodeBase64(b);
      const url = encodeBase64Url(b);
      assert.equal(std, Buffer.from(b).toString("base64").replace(/=+$/, ""));
      assert.equal(url, Buffer.from(b).toString("base64url"));
      assert.ok(!std.includes("=") && !url.includes("="));
      assert.deepEqual(decodeBase64(std), b);
      assert.deepEqual(decodeBase64(url), b);
      assert.deepEqual(decodeBase64(Buffer.from(b).toString("base64")), b);
      assert.deepEqual(decodeBase64(url.replace(/-/g, "+")), b);
    }),
    { numRuns: 500 },
  );
});

test("property: decoding never throws anything but TypeError", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 12 }), (s) => {
      try {
        const out = decodeBase64(s);
        assert.equal(out.length, Math.floor((s.replace(/=+$/, "").length * 3) / 4));
      } catch (e) {
        assert.ok(e instanceof TypeError);
      }
    }),
    { numRuns: 1000 },
  );
});
