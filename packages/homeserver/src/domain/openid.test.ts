import { test } from "node:test";
import assert from "node:assert/strict";
import { isMatrixError } from "@beckon/protocol";
import { FakeClock } from "@beckon/server-kit";
import { fetchOutbound } from "../identity/testing.js";
import { openidUserinfo, requestOpenidToken } from "./openid.js";
import { threepidServices } from "./threepid-services.js";
import { threepidTestDb, threepidTestDeps } from "./threepid-testing.js";

test("OpenID tokens: issued to oneself, resolved by userinfo, dead after expiry, 401 M_UNKNOWN_TOKEN otherwise", async () => {
  const handle = await threepidTestDb();
  try {
    const clock = new FakeClock();
    const deps = threepidTestDeps(handle, { outbound: fetchOutbound(), map: {}, clock });
    deps.rooms.users.add("@bob:hs.test");
    const s = threepidServices(deps);
    await assert.rejects(requestOpenidToken(s, "@eve:hs.test", "@bob:hs.test"), (e: unknown) => isMatrixError(e) && e.status === 403 && e.errcode === "M_FORBIDDEN");
    const tok = await requestOpenidToken(s, "@bob:hs.test", "@bob:hs.test");
    assert.equal(tok.token_type, "Bearer");
    assert.equal(tok.matrix_server_name, "hs.test");
    assert.equal(tok.expires_in, 3600);
    assert.ok(tok.access_token.length >= 24);
    assert.deepEqual(await openidUserinfo(s, tok.access_token), { sub: "@bob:hs.test" });
    const unknown = (t: string | undefined) => assert.rejects(openidUserinfo(s, t), (e: unknown) => isMatrixError(e) && e.status === 401 && e.errcode === "M_UNKNOWN_TOKEN");
    await unknown("nope");
    await unknown(undefined);
    await unknown("");
    clock.advance(3_600_000);
    await unknown(tok.access_token);
    // A deactivated (no longer existing) user's live token is dead too.
    const tok2 = await requestOpenidToken(s, "@bob:hs.test", "@bob:hs.test");
    deps.rooms.users.delete("@bob:hs.test");
    await unknown(tok2.access_token);
  } finally {
    await handle.close();
  }
});
