import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as nodeCrypto from "node:crypto";
import { ED25519_PKCS8_PREFIX, concatBytes } from "./crypto.js";
import { ed25519KeyPairFromSeed, ed25519PrivateKeyFromSeed, nodeCryptoProvider } from "./node.js";

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));

describe("ed25519 keys from seeds (node)", () => {
  it("RFC 8032 §7.1 test 1: the seed's public key and signature of the empty message", () => {
    const seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    const pub = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    assert.equal(Buffer.from(nodeCryptoProvider.ed25519PublicKeySync(seed)).toString("hex"), pub);
    assert.equal(Buffer.from(ed25519KeyPairFromSeed(seed).publicKey, "base64url").toString("hex"), pub);
    const sig = nodeCrypto.sign(null, new Uint8Array(0), ed25519PrivateKeyFromSeed(seed));
    assert.equal(
      sig.toString("hex"),
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );
  });

  it("agrees with a DER PKCS#8 import for random seeds", () => {
    for (let i = 0; i < 50; i++) {
      const seed = new Uint8Array(nodeCrypto.randomBytes(32));
      const viaDer = nodeCrypto.createPrivateKey({ key: Buffer.from(concatBytes(ED25519_PKCS8_PREFIX, seed)), format: "der", type: "pkcs8" });
      const expected = viaDer.export({ format: "jwk" }).x;
      const pair = ed25519KeyPairFromSeed(seed);
      assert.equal(pair.publicKey, expected);
      assert.equal(pair.seed, Buffer.from(seed).toString("base64url"));
      assert.equal(ed25519PrivateKeyFromSeed(seed).export({ format: "jwk" }).x, expected);
    }
  });

  it("refuses a seed that is not 32 bytes", () => {
    assert.throws(() => ed25519PrivateKeyFromSeed(new Uint8Array(31)), TypeError);
  });
});
