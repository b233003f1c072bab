/**
 * Two identity-server processes' worth of delivery workers on one database: claims (row locks
 * with SKIP LOCKED on PostgreSQL, a single writer on SQLite) mean no invite is sent twice.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { systemClock } from "@beckon/server-kit";
import { waitFor } from "@beckon/test-support";
import { startFakeHomeserver } from "../testing/fake-homeserver.js";
import { startTestServer } from "../testing/harness.js";
import { engines } from "../testing/databases.js";

const V2 = "/_matrix/identity/v2";

for (const engine of engines()) {
  describe(`two servers, one database (${engine.name})`, { skip: engine.skip }, () => {
    it("every invite delivered once although both workers run", { timeout: 60_000 }, async () => {
      const hs = await startFakeHomeserver();
      const a = await startTestServer({ hs, clock: systemClock, engine: engine.name });
      const b = await startTestServer({ hs, clock: systemClock, databaseUrl: a.databaseUrl });
      try {
        const alice = await a.register(`@alice:${hs.serverName}`);
        const post = (path: string, token: string, body: unknown) =>
          a.is.app.inject({ method: "POST", url: path, headers: { authorization: `Bearer ${token}` }, payload: JSON.stringify(body) });
        const tokens: string[] = [];
        const users = Array.from({ length: 12 }, (_, i) => `u${i}`);
        for (const u of users) {
          for (let r = 0; r < 3; r++) {
            const res = await post(`${V2}/store-invite`, alice, { medium: "email", address: `${u}@example.org`, room_id: `!${u}r${r}:hs.example`, sender: `@alice:${hs.serverName}` });
            tokens.push((res.json() as { token: string }).token);
          }
        }
        // Queue all binds first, then let both workers race for the rows.
        for (const u of users) {
          const tok = await a.register(`@${u}:${hs.serverName}`);
          const rt = (await post(`${V2}/validate/email/requestToken`, tok, { client_secret: "s", email: `${u}@example.org`, send_attempt: 1 })).json() as { sid: string };
          const code = a.mail.mails.filter((m) => m.kind === "validation").at(-1)!.vars.token;
          await post(`${V2}/validate/email/submitToken`, tok, { sid: rt.sid, client_secret: "s", token: code });
          assert.equal((await post(`${V2}/3pid/bind`, tok, { sid: rt.sid, client_secret: "s", mxid: `@${u}:${hs.serverName}` })).statusCode, 200);
        }
        await Promise.all([a.is.delivery.runOnce(), b.is.delivery.runOnce(), a.is.delivery.runOnce(), b.is.delivery.runOnce()]);
        await waitFor(async () => (await a.is.ctx.stores.delivery.counts()).delivered === tokens.length, { timeoutMs: 20_000, what: "all delivered" });
        const delivered = hs.delivered.flatMap((d) => (d.invites as { token: string }[]).map((i) => i.token));
        assert.equal(delivered.length, tokens.length, "no invite sent twice");
        assert.deepEqual([...delivered].sort(), [...tokens].sort());
      } finally {
        await b.is.stop();
        await a.close();
        await hs.close();
      }
    });
  });
}
