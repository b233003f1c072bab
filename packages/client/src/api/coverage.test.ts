/**
 * Every Client-Server and Identity Service endpoint described in `@beckon/protocol` has a typed
 * call in the SDK: each method is called against a recording fetch and the requests are matched
 * to the descriptors' paths. Exclusions carry their reason.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { clientEndpoints, identityEndpoints, isLookup, type EndpointDescriptor } from "@beckon/protocol";
import { MatrixClient } from "./matrix-client.js";
import { IdentityClient, signWithUrl } from "./identity-client.js";
import { FakeFetch, json } from "../testing/fake-fetch.js";

const EXCLUDED: Record<string, string> = {
  "client.admin.register_nonce": "Synapse admin API (shared-secret registration), not a client call",
  "client.admin.register": "Synapse admin API (shared-secret registration), not a client call",
  "client.membership.join": "join/{roomIdOrAlias} covers it (same body and answer)",
  "identity.validate.email_submit_token_get": "the HTML page behind the validation mail's link, opened by a browser",
};

function matcher(d: EndpointDescriptor): RegExp {
  return new RegExp("^" + d.path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[A-Za-z0-9_]+\}/g, "[^/?]*") + "(\\?|$)");
}

describe("typed calls cover every endpoint", () => {
  it("C-S and IS v2", async () => {
    const ff = new FakeFetch(() => json(200, {}));
    const opts = { fetch: ff.fetch, defaults: { maxAttempts: 1 } };
    const m = new MatrixClient({ baseUrl: "http://hs", accessToken: "t", userId: "@a:hs", ...opts });
    const is = new IdentityClient({ baseUrl: "http://is", accessToken: "t", ...opts });
    const r = "!r:hs";
    const calls: (() => Promise<unknown>)[] = [
      () => m.versions(), () => m.capabilities(), () => m.wellKnown(), () => m.loginFlows(),
      () => m.register({ username: "u", password: "p" }), () => m.login("u", "p"), () => m.logout(), () => m.logout({ all: true }),
      () => m.whoami(), () => m.deactivate(), () => m.requestOpenIdToken(),
      () => m.getProfile("@a:hs"), () => m.getDisplayName("@a:hs"), () => m.setDisplayName("A"), () => m.getAvatarUrl("@a:hs"), () => m.setAvatarUrl("mxc://a/b"),
      () => m.createRoom(), () => m.getState(r), () => m.getStateEvent(r, "m.room.name"), () => m.setState(r, "m.room.name", "", { name: "n" }),
      () => m.sendMessage(r, "hi"), () => m.messages(r), () => m.members(r), () => m.joinedMembers(r), () => m.joinedRooms(),
      () => m.resolveAlias("#a:hs"), () => m.setAlias("#a:hs", r), () => m.deleteAlias("#a:hs"), () => m.roomAliases(r), () => m.getEvent(r, "$e"),
      () => m.getAccountData("m.identity_server"), () => m.setAccountData("m.identity_server", { base_url: "https://is" }),
      () => m.getRoomAccountData(r, "m.tag"), () => m.setRoomAccountData(r, "m.tag", {}),
      () => m.invite(r, "@b:hs"), () => m.inviteBy3PID(r, { idServer: "is", idAccessToken: "t", medium: "email", address: "a@b.c" }),
      () => m.join(r), () => m.leave(r), () => m.forget(r), () => m.kick(r, "@b:hs"), () => m.ban(r, "@b:hs"), () => m.unban(r, "@b:hs"),
      () => m.syncOnce(), () => m.getThreepids(), () => m.bindThreepid({ sid: "s", clientSecret: "c", idServer: "is", idAccessToken: "t" }),
      () => m.unbindThreepid("email", "a@b.c"), () => m.deleteThreepid("email", "a@b.c"),
      () => is.versions(), () => is.status(), () => is.registerWithOpenId({ access_token: "o", token_type: "Bearer", matrix_server_name: "hs", expires_in: 1 }),
      () => is.account(), () => is.logout(), () => is.getTerms(), () => is.acceptTerms([]), () => is.hashDetails(),
      () => is.call(isLookup, { body: { addresses: [], algorithm: "sha256", pepper: "p" } }),
      () => is.requestEmailToken({ email: "a@b.c", clientSecret: "c", sendAttempt: 1 }), () => is.submitEmailToken({ sid: "s", clientSecret: "c", token: "1" }),
      () => is.requestMsisdnToken({ country: "GB", phoneNumber: "1", clientSecret: "c", sendAttempt: 1 }), () => is.submitMsisdnToken({ sid: "s", clientSecret: "c", token: "1" }),
      () => is.getValidated3pid("s", "c"), () => is.bind({ sid: "s", clientSecret: "c", mxid: "@a:hs" }),
      () => is.unbind({ mxid: "@a:hs", medium: "email", address: "a@b.c", sid: "s", clientSecret: "c" }),
      () => is.storeInvite({ medium: "email", address: "a@b.c", room_id: r as never, sender: "@a:hs" as never }),
      () => is.signEd25519({ mxid: "@a:hs", token: "t", privateKey: "k" }), () => signWithUrl(is.transport, "http://is/_matrix/identity/v2/sign-ed25519?token=t&private_key=k", "@a:hs"),
      () => is.getPubkey("ed25519:0"), () => is.isPubkeyValid("k"), () => is.isEphemeralPubkeyValid("k"),
    ];
    for (const c of calls) await c().catch(() => undefined);
    const seen = ff.calls.map((c) => `${c.method} ${new URL(c.url).pathname}${new URL(c.url).search}`);
    const missing: string[] = [];
    for (const d of [...clientEndpoints, ...identityEndpoints]) {
      if (EXCLUDED[d.id]) continue;
      const re = matcher(d);
      if (!seen.some((s) => s.startsWith(d.method + " ") && re.test(s.slice(d.method.length + 1)))) missing.push(`${d.id} ${d.method} ${d.path}`);
    }
    assert.deepEqual(missing, []);
  });
});
