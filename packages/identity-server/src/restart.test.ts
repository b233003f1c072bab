/**
 * Kill-and-restart: an identity server process is SIGKILLed while onbind deliveries are in
 * flight; after a restart on the same database every invite is delivered.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { spawnUntilReady, waitFor } from "@beckon/test-support";
import { systemClock } from "@beckon/server-kit";
import { startFakeHomeserver } from "./testing/fake-homeserver.js";
import { startTestServer } from "./testing/harness.js";
import { engines } from "./testing/databases.js";

const CHILD = fileURLToPath(new URL("./testing/child-server.js", import.meta.url));
const V2 = "/_matrix/identity/v2";

const spawnServer = (overrides: object) => spawnUntilReady([CHILD, JSON.stringify(overrides)], 15_000);

for (const engine of engines())
describe(`identity server crash safety (${engine.name})`, { skip: engine.skip }, () => {
  it("SIGKILL mid-queue, restart: every invite delivered", { timeout: 60_000 }, async () => {
    const hs = await startFakeHomeserver();
    hs.behaviour = "hang";
    const overrides = {
      homeservers: { [hs.serverName]: hs.baseUrl },
      delivery: { lease: "1s", base_backoff: "200ms", max_backoff: "1s" },
    };
    // Prepare the database in-process: invites for two addresses, both bound (deliveries queued).
    const t = await startTestServer({ hs, clock: systemClock, overrides, engine: engine.name });
    const url = t.databaseUrl;
    const alice = await t.register(`@alice:${hs.serverName}`);
    const tokens: string[] = [];
    const post = (path: string, token: string, body: unknown) =>
      t.is.app.inject({ method: "POST", url: path, headers: { authorization: `Bearer ${token}` }, payload: JSON.stringify(body) });
    for (const [user, rooms] of [["bob", 3], ["carol", 2]] as const) {
      for (let i = 0; i < rooms; i++) {
        const r = await post(`${V2}/store-invite`, alice, { medium: "email", address: `${user}@example.org`, room_id: `!${user}${i}:hs.example`, sender: `@alice:${hs.serverName}` });
        tokens.push((r.json() as { token: string }).token);
      }
      const tok = await t.register(`@${user}:${hs.serverName}`);
      const rt = (await post(`${V2}/validate/email/requestToken`, tok, { client_secret: "s", email: `${user}@example.org`, send_attempt: 1 })).json() as { sid: string };
      const code = t.mail.mails.filter((m) => m.kind === "validation").at(-1)!.vars.token;
      await post(`${V2}/validate/email/submitToken`, tok, { sid: rt.sid, client_secret: "s", token: code });
      assert.equal((await post(`${V2}/3pid/bind`, tok, { sid: rt.sid, client_secret: "s", mxid: `@${user}:${hs.serverName}` })).statusCode, 200);
    }
    assert.equal((await t.is.ctx.stores.delivery.counts()).pending, 5);
    await t.is.stop(); // workers were never started: the queue is untouched

    const config = { ...overrides, server_name: "is.test", public_base_url: "http://127.0.0.1:8090", database_url: url, pepper: "matrixrocks", rate_limits: { enabled: false }, log_level: "silent" };
    const first = await spawnServer(config);
    await waitFor(() => hs.onbinds.length >= 2, { timeoutMs: 10_000, what: "onbind attempts in flight" });
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));
    assert.equal(hs.delivered.length, 0);

    hs.behaviour = "up";
    const second = await spawnServer(config);
    try {
      await waitFor(
        () => {
          const got = new Set(hs.delivered.flatMap((d) => (d.invites as { token: string }[]).map((i) => i.token)));
          return tokens.every((tk) => got.has(tk));
        },
        { timeoutMs: 20_000, what: "all invites delivered after restart" },
      );
    } finally {
      second.child.kill("SIGTERM");
      await new Promise((r) => second.child.once("exit", r));
    }
    const delivered = hs.delivered.flatMap((d) => (d.invites as { token: string }[]).map((i) => i.token));
    assert.deepEqual([...new Set(delivered)].sort(), [...tokens].sort());
    await hs.close();
    await t.close(); // already stopped; removes the temporary database
  });
});
