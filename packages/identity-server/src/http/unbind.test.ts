/** `3pid/unbind` authorised by the homeserver's X-Matrix signature (Synapse's `destination_is` form). */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { lookupHash, signIdentityUnbindRequest } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { startFakeHomeserver, type FakeHomeserver } from "../testing/fake-homeserver.js";
import { startTestServer, type TestServer } from "../testing/harness.js";

const V2 = "/_matrix/identity/v2";
const URI = "/_matrix/identity/v2/3pid/unbind";

describe("3pid/unbind with X-Matrix (destination_is)", () => {
  let hs: FakeHomeserver;
  let t: TestServer;
  let bobToken: string;
  const bob = () => `@bob:${hs.serverName}`;

  async function bindBob(address: string) {
    const inj = (url: string, body: unknown) =>
      t.is.app.inject({ method: "POST", url, headers: { authorization: `Bearer ${bobToken}` }, payload: JSON.stringify(body) });
    const rt = (await inj(`${V2}/validate/email/requestToken`, { client_secret: "sec", email: address, send_attempt: 1 })).json() as { sid: string };
    const code = t.mail.mails.at(-1)!.vars.token;
    await inj(`${V2}/validate/email/submitToken`, { sid: rt.sid, client_secret: "sec", token: code });
    assert.equal((await inj(`${V2}/3pid/bind`, { sid: rt.sid, client_secret: "sec", mxid: bob() })).statusCode, 200);
  }

  async function isBound(address: string): Promise<boolean> {
    const h = lookupHash(address, "email", "matrixrocks");
    const r = await t.is.app.inject({
      method: "POST",
      url: `${V2}/lookup`,
      headers: { authorization: `Bearer ${bobToken}` },
      payload: JSON.stringify({ algorithm: "sha256", pepper: "matrixrocks", addresses: [h] }),
    });
    return Object.keys((r.json() as { mappings: object }).mappings).length === 1;
  }

  async function unbind(content: Record<string, unknown>, opts: { origin?: string; idServer?: string; tamper?: boolean } = {}) {
    const authorization = await signIdentityUnbindRequest(
      { origin: opts.origin ?? hs.serverName, idServer: opts.idServer ?? "is.test", content },
      hs.keyId,
      hs.seed,
      nodeCryptoProvider,
    );
    const payload = opts.tamper ? { ...content, threepid: { medium: "email", address: "someone-else@example.org" } } : content;
    return t.is.app.inject({ method: "POST", url: URI, headers: { authorization }, payload: JSON.stringify(payload) });
  }

  before(async () => {
    hs = await startFakeHomeserver();
    t = await startTestServer({ hs, overrides: { other_names: ["127.0.0.1:8090"] } });
    bobToken = await t.register(`@bob:${hs.serverName}`);
  });
  after(async () => {
    await t.close();
    await hs.close();
  });

  it("the mxid's homeserver may unbind (key fetched from /_matrix/key/v2/server)", async () => {
    await bindBob("bob@example.org");
    assert.equal(await isBound("bob@example.org"), true);
    const r = await unbind({ mxid: bob(), threepid: { medium: "email", address: "bob@example.org" } });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(await isBound("bob@example.org"), false);
  });

  it("also under the other name the IS answers to (DECISIONS: 127.0.0.1:P)", async () => {
    await bindBob("bob2@example.org");
    const r = await unbind({ mxid: bob(), threepid: { medium: "email", address: "bob2@example.org" } }, { idServer: "127.0.0.1:8090" });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(await isBound("bob2@example.org"), false);
  });

  it("refuses a foreign destination, a tampered body, and a server that does not host the user", async () => {
    await bindBob("bob3@example.org");
    const content = { mxid: bob(), threepid: { medium: "email", address: "bob3@example.org" } };
    const foreign = await unbind(content, { idServer: "other.example" });
    assert.equal(foreign.statusCode, 401);
    const tampered = await unbind(content, { tamper: true });
    assert.equal(tampered.statusCode, 401);
    const notHost = await unbind({ mxid: "@bob:elsewhere.example", threepid: { medium: "email", address: "bob3@example.org" } });
    assert.equal(notHost.statusCode, 403);
    assert.equal(await isBound("bob3@example.org"), true);
  });

  it("an unreachable homeserver key endpoint → 502 M_UNKNOWN without network details", async () => {
    // Not in the homeservers map: discovery targets 127.0.0.1:1, a loopback address the guard refuses.
    const r = await unbind({ mxid: "@bob:127.0.0.1:1", threepid: { medium: "email", address: "x@example.org" } }, { origin: "127.0.0.1:1" });
    assert.equal(r.statusCode, 502);
    assert.equal(r.json().errcode, "M_UNKNOWN");
    assert.match(r.json().error as string, /contact/);
    assert.doesNotMatch(r.body, /ECONN|ENOTFOUND|blocked|loopback/);
  });

  it("an origin other than the mxid's server is refused before any connection (no key-fetch oracle)", async () => {
    const r = await t.is.app.inject({
      method: "POST",
      url: URI,
      headers: { authorization: 'X-Matrix origin=localhost:1,key="ed25519:0",sig="a"' },
      payload: JSON.stringify({ mxid: bob(), threepid: { medium: "email", address: "a@example.org" } }),
    });
    assert.equal(r.statusCode, 403);
    assert.equal(r.json().errcode, "M_FORBIDDEN");
  });
});
