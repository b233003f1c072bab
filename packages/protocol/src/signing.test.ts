import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import vectors from "./fixtures/signing-vectors.json" with { type: "json" };
import {
  addSignature,
  decodeBase64,
  encodeBase64,
  encodeBase64Url,
  getSignature,
  signingBytes,
  signJson,
  signJsonSync,
  utf8Decode,
  verifyJsonSignature,
  verifyJsonSignatureSync,
  WebCryptoProvider,
  type CryptoProvider,
} from "./index.js";
import { NodeCryptoProvider } from "./node.js";

const providers: [string, CryptoProvider][] = [
  ["node:crypto", new NodeCryptoProvider()],
  ["WebCrypto", new WebCryptoProvider()],
];
const seed = decodeBase64(vectors.seed);
const { entity, keyId, publicKey } = vectors;

for (const [name, provider] of providers) {
  test(`spec signing vectors (${name})`, async () => {
    assert.equal(encodeBase64(await provider.ed25519PublicKey(seed)), vectors.publicKey);
    for (const c of vectors.cases) {
      const signed = await signJson(c.input as Record<string, unknown>, entity, keyId, seed, provider);
      assert.deepEqual(signed.signatures, { [entity]: { [keyId]: c.signature } });
      assert.equal(await verifyJsonSignature(signed, entity, keyId, publicKey, provider), true);
      const tampered = { ...signed, extra: 1 };
      assert.equal(await verifyJsonSignature(tampered, entity, keyId, publicKey, provider), false);
    }
  });

  test(`signatures merge, unsigned is kept but not signed (${name})`, async () => {
    const obj = { one: 1, two: "Two", unsigned: { age: 5 }, signatures: { other: { "ed25519:x": "abc" } } };
    const signed = await signJson(obj, entity, keyId, seed, provider);
    assert.deepEqual(signed.unsigned, { age: 5 });
    assert.equal(signed.signatures.other?.["ed25519:x"], "abc");
    // Same signature as the spec's `{"one":1,"two":"Two"}` vector: unsigned and signatures are not signed.
    assert.equal(getSignature(signed, entity, keyId), vectors.cases[1]!.signature);
    assert.equal(await verifyJsonSignature({ ...signed, unsigned: { age: 99 } }, entity, keyId, publicKey, provider), true);
    // A second key of the same entity is added beside the first.
    const twice = await signJson(signed, entity, "ed25519:2", seed, provider);
    assert.deepEqual(Object.keys(twice.signatures[entity]!).sort(), [keyId, "ed25519:2"]);
    assert.equal(obj.signatures.other["ed25519:x"], "abc");
    assert.equal((obj.signatures as Record<string, unknown>)[entity], undefined, "input not mutated");
  });

  test(`verification is tolerant of key encodings and never throws (${name})`, async () => {
    const signed = await signJson({ a: 1 }, entity, keyId, seed, provider);
    const sig = getSignature(signed, entity, keyId)!;
    const rawKey = decodeBase64(publicKey);
    for (const key of [publicKey, publicKey + "=", encodeBase64Url(rawKey), rawKey]) {
      assert.equal(await verifyJsonSignature(signed, entity, keyId, key, provider), true);
    }
    // The signature itself in the URL-safe alphabet, padded.
    const urlSig = encodeBase64Url(decodeBase64(sig)) + "==";
    assert.equal(await verifyJsonSignature(addSignature({ a: 1 }, entity, keyId, urlSig), entity, keyId, publicKey, provider), true);
    const bad: [Record<string, unknown>, string | Uint8Array][] = [
      [signed, "not base64!"],
      [signed, new Uint8Array(31)],
      [signed, encodeBase64(new Uint8Array(32))],
      [addSignature({ a: 1 }, entity, keyId, "!!!"), publicKey],
      [addSignature({ a: 1 }, entity, keyId, sig.slice(0, 40)), publicKey],
      [{ a: 1 }, publicKey],
      [{ a: 1, signatures: "x" }, publicKey],
      [{ a: 1, signatures: { [entity]: [] } }, publicKey],
      [{ a: 1, signatures: { [entity]: { [keyId]: 5 } } }, publicKey],
      [{ a: 1.5, signatures: signed.signatures }, publicKey],
    ];
    for (const [obj, key] of bad) assert.equal(await verifyJsonSignature(obj, entity, keyId, key, provider), false);
    assert.equal(await verifyJsonSignature(signed, "other", keyId, publicKey, provider), false);
    assert.equal(await verifyJsonSignature(signed, entity, "ed25519:other", publicKey, provider), false);
  });

  test(`secret keys must be 32-byte seeds (${name})`, async () => {
    await assert.rejects(signJson({}, entity, keyId, new Uint8Array(64), provider), TypeError);
    // A base64 seed is accepted.
    assert.equal(getSignature(await signJson({}, entity, keyId, vectors.seed, provider), entity, keyId), vectors.cases[0]!.signature);
  });
}

test("signingBytes is canonical JSON without signatures and unsigned", () => {
  assert.equal(utf8Decode(signingBytes({ b: 1, a: "é", signatures: { x: {} }, unsigned: { y: 1 } })), '{"a":"é","b":1}');
});

test("property: both providers produce the same signatures and verify each other's", async () => {
  const [, node] = providers[0]!;
  const [, web] = providers[1]!;
  await fc.assert(
    fc.asyncProperty(
      fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 10 }), fc.maxSafeInteger(), fc.boolean()), { maxKeys: 5, noNullPrototype: true }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      async (obj, key) => {
        const a = await signJson(obj, "e", "ed25519:k", key, node);
        const b = await signJson(obj, "e", "ed25519:k", key, web);
        assert.deepEqual(a.signatures, b.signatures);
        const pub = await node.ed25519PublicKey(key);
        assert.deepEqual(pub, await web.ed25519PublicKey(key));
        assert.equal(await verifyJsonSignature(a, "e", "ed25519:k", pub, web), true);
        assert.equal(await verifyJsonSignature(b, "e", "ed25519:k", pub, node), true);
      },
    ),
    { numRuns: 40 },
  );
});

test("signJsonSync / verifyJsonSignatureSync match the async forms", async () => {
  const node = new NodeCryptoProvider();
  for (const c of vectors.cases) {
    const signed = signJsonSync(c.input as Record<string, unknown>, entity, keyId, seed, node);
    assert.equal(getSignature(signed, entity, keyId), c.signature);
    assert.equal(verifyJsonSignatureSync(signed, entity, keyId, publicKey, node), true);
    assert.equal(verifyJsonSignatureSync({ ...signed, x: 1 }, entity, keyId, publicKey, node), false);
    assert.equal(verifyJsonSignatureSync(signed, entity, keyId, "garbage!", node), false);
    assert.deepEqual(signed, await signJson(c.input as Record<string, unknown>, entity, keyId, seed, node));
  }
  assert.throws(() => signJsonSync({ a: 1.5 }, entity, keyId, seed, node));
  await assert.rejects(signJson({ a: 1.5 }, entity, keyId, seed, node));
  await assert.rejects(signJson({ a: 1.5 }, entity, keyId, seed, new WebCryptoProvider()));
});

test("a reused seed array that was overwritten is not served from the key cache", async () => {
  const node = new NodeCryptoProvider();
  const buf = seed.slice();
  const first = signJsonSync({}, entity, keyId, buf, node);
  buf.fill(7);
  const second = signJsonSync({}, entity, keyId, buf, node);
  assert.notEqual(getSignature(first, entity, keyId), getSignature(second, entity, keyId));
  assert.equal(getSignature(second, entity, keyId), getSignature(await signJson({}, entity, keyId, new Uint8Array(32).fill(7), new WebCryptoProvider()), entity, keyId));
});
