import { test } from "node:test";
import assert from "node:assert/strict";
import vectors from "./fixtures/signing-vectors.json" with { type: "json" };
import { decodeBase64, encodeBase64, WebCryptoProvider, signJson, verifyJsonSignature, type CryptoProvider } from "./index.js";
import { NodeCryptoProvider } from "./node.js";

const providers: [string, CryptoProvider][] = [
  ["node:crypto", new NodeCryptoProvider()],
  ["WebCrypto", new WebCryptoProvider()],
];

for (const [name, provider] of providers) {
  test(`spec signing vectors (${name})`, async () => {
    const seed = decodeBase64(vectors.seed);
    assert.equal(encodeBase64(await provider.ed25519PublicKey(seed)), vectors.publicKey);
    for (const c of vectors.cases) {
      const signed = await signJson(c.input as Record<string, unknown>, vectors.entity, vectors.keyId, seed, provider);
      assert.deepEqual(signed.signatures, { [vectors.entity]: { [vectors.keyId]: c.signature } });
      assert.equal(await verifyJsonSignature(signed, vectors.entity, vectors.keyId, vectors.publicKey, provider), true);
      const tampered = { ...signed, extra: 1 };
      assert.equal(await verifyJsonSignature(tampered, vectors.entity, vectors.keyId, vectors.publicKey, provider), false);
    }
  });
}
