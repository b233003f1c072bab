import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeBase64, isMatrixError, signJson, WebCryptoProvider } from "./index.js";
import { nodeCryptoProvider } from "./node.js";
import {
  formatXMatrixHeader,
  identityUnbindSignedObject,
  parseXMatrixHeader,
  signIdentityUnbindRequest,
  signXMatrixRequest,
  verifyXMatrixRequest,
  xMatrixSignedObject,
} from "./x-matrix.js";

const seed = decodeBase64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1");
const publicKey = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";
const getKey = async (origin: string, keyId: string) => (origin === "hs.example" && keyId === "ed25519:1" ? publicKey : undefined);

async function rejects401(p: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(p, (e) => isMatrixError(e) && e.status === 401 && e.errcode === "M_UNAUTHORIZED", what);
}

test("parseXMatrixHeader: spec form, any order, case, spacing, bare values, escapes", () => {
  const spec = 'X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF"';
  assert.deepEqual(parseXMatrixHeader(spec), { origin: "origin.hs.example.com", destination: "destination.hs.example.com", key: "ed25519:key1", sig: "ABCDEF" });
  assert.deepEqual(parseXMatrixHeader('x-matrix  SIG="s" , Key = ed25519:k1,ORIGIN=a.example:8448 '), { origin: "a.example:8448", key: "ed25519:k1", sig: "s" });
  assert.deepEqual(parseXMatrixHeader('X-Matrix origin="a\\"b",key="k",signature="s",extra="x"'), { origin: 'a"b', key: "k", sig: "s" });
  for (const bad of ["Bearer x", "X-Matrix", 'X-Matrix origin="a",key="k"', 'X-Matrix origin="a",origin="b",key="k",sig="s"', 'X-Matrix origin="a,key="k",sig="s"', "X-Matrix origin=a b,key=k,sig=s", 'X-Matrix origin="a";key="k",sig="s"']) {
    assert.throws(() => parseXMatrixHeader(bad), (e) => isMatrixError(e) && e.status === 401, bad);
  }
});

test("formatXMatrixHeader round-trips through the parser", () => {
  const auth = { origin: 'we"ird\\', destination: "d.example", key: "ed25519:0", sig: "abc/+" };
  assert.deepEqual(parseXMatrixHeader(formatXMatrixHeader(auth)), auth);
});

for (const [name, provider] of [["node:crypto", nodeCryptoProvider], ["WebCrypto", new WebCryptoProvider()]] as const) {
  test(`server-server request signing and verification (${name})`, async () => {
    const req = { method: "PUT", uri: "/_matrix/federation/v1/send/1?x=1", origin: "hs.example", destination: "is.example", content: { a: 1 } };
    const authorization = await signXMatrixRequest(req, "ed25519:1", seed, provider);
    assert.match(authorization, /^X-Matrix origin="hs.example",destination="is.example",key="ed25519:1",sig="[A-Za-z0-9+/]{86}"$/);
    const base = { method: "PUT", uri: req.uri, content: { a: 1 }, authorization, getKey, provider };
    assert.equal((await verifyXMatrixRequest({ ...base, ourNames: ["is.example"] })).origin, "hs.example");
    await rejects401(verifyXMatrixRequest({ ...base, ourNames: ["other.example"] }), "foreign destination");
    await rejects401(verifyXMatrixRequest({ ...base, ourNames: ["is.example"], content: { a: 2 } }), "tampered content");
    await rejects401(verifyXMatrixRequest({ ...base, ourNames: ["is.example"], uri: "/other" }), "tampered uri");
    await rejects401(verifyXMatrixRequest({ ...base, ourNames: ["is.example"], authorization: undefined }), "missing header");
    await rejects401(verifyXMatrixRequest({ ...base, ourNames: ["is.example"], getKey: async () => undefined }), "unknown key");
    // The signed object is exactly the spec's.
    const expected = await signJson(xMatrixSignedObject(req), "hs.example", "ed25519:1", seed, provider);
    assert.ok(authorization.endsWith(`sig="${expected.signatures["hs.example"]!["ed25519:1"]}"`));
  });

  test(`HS → IS unbind uses destination_is (${name})`, async () => {
    const content = { mxid: "@bob:hs.example", threepid: { medium: "email", address: "bob@example.org" } };
    const authorization = await signIdentityUnbindRequest({ origin: "hs.example", idServer: "localhost:8090", content }, "ed25519:1", seed, provider);
    assert.equal(parseXMatrixHeader(authorization).destination, "localhost:8090");
    assert.deepEqual(identityUnbindSignedObject({ origin: "hs.example", idServer: "localhost:8090", content }), {
      method: "POST",
      uri: "/_matrix/identity/v2/3pid/unbind",
      origin: "hs.example",
      destination_is: "localhost:8090",
      content,
    });
    const base = { method: "POST", uri: "/_matrix/identity/v2/3pid/unbind", content, getKey, provider, ourNames: ["localhost:8090", "127.0.0.1:8090"] };
    assert.equal((await verifyXMatrixRequest({ ...base, authorization, variant: "destination_is" })).origin, "hs.example");
    // The same signature does not verify as the ordinary form.
    await rejects401(verifyXMatrixRequest({ ...base, authorization }), "wrong variant");
    // Without a destination in the header, each of our names is tried.
    const noDest = authorization.replace(/,destination="[^"]*"/, "");
    assert.equal((await verifyXMatrixRequest({ ...base, authorization: noDest, variant: "destination_is" })).origin, "hs.example");
  });
}
