import { test } from "node:test";
import assert from "node:assert/strict";
import { endpoint, v, MatrixError } from "@beckon/protocol";
import { createHttpApp, createRouter, HANDLED } from "./http.js";

const echo = endpoint<{ name: string }, { hello: string }>({
  id: "test.echo",
  api: "client",
  method: "POST",
  path: "/_test/echo/{who}",
  auth: "none",
  rateLimited: false,
  body: v.object({ name: v.string() }),
});
const secret = endpoint({ id: "test.secret", api: "client", method: "GET", path: "/_test/secret", auth: "user", rateLimited: true });

async function makeApp() {
  const m = createHttpApp();
  const router = createRouter<string>(m, {
    authenticators: {
      user: async (req) => {
        if (req.headers.authorization !== "Bearer good") throw new MatrixError("M_UNKNOWN_TOKEN", "bad token", 401);
        return "alice";
      },
    },
    rateLimit: (_req, _d, who) => {
      if (who === "limited") throw new MatrixError("M_LIMIT_EXCEEDED", "slow down", 429, { retry_after_ms: 1500 });
    },
  });
  router.add(echo, ({ body, params }) => ({ hello: `${body.name}/${params.who}` }));
  router.add(secret, ({ auth, reply }) => {
    void reply.code(200).type("text/plain").send(`secret for ${auth}`);
    return HANDLED;
  });
  await m.app.ready();
  return m.app;
}

test("routes, validation and errors render as Matrix errors", async () => {
  const app = await makeApp();
  let r = await app.inject({ method: "POST", url: "/_test/echo/%21room%3Ax", payload: '{"name":"n"}' });
  assert.equal(r.statusCode, 200);
  assert.deepEqual(r.json(), { hello: "n/!room:x" });
  r = await app.inject({ method: "POST", url: "/_test/echo/x", payload: '{"name":1,"name":2}', headers: { "content-type": "application/json" } });
  assert.equal(r.statusCode, 400);
  assert.equal(r.json().errcode, "M_NOT_JSON");
  r = await app.inject({ method: "POST", url: "/_test/echo/x", payload: "{}" });
  assert.equal(r.json().errcode, "M_MISSING_PARAM");
  r = await app.inject({ method: "POST", url: "/_test/echo/x", payload: "[1]", headers: { "content-type": "text/plain" } });
  assert.equal(r.json().errcode, "M_BAD_JSON");
  r = await app.inject({ method: "GET", url: "/_test/echo/x" });
  assert.equal(r.statusCode, 405);
  assert.equal(r.json().errcode, "M_UNRECOGNIZED");
  r = await app.inject({ method: "GET", url: "/nowhere" });
  assert.equal(r.statusCode, 404);
  assert.equal(r.json().errcode, "M_UNRECOGNIZED");
  r = await app.inject({ method: "GET", url: "/_test/secret" });
  assert.equal(r.statusCode, 401);
  assert.equal(r.json().errcode, "M_UNKNOWN_TOKEN");
  r = await app.inject({ method: "GET", url: "/_test/secret", headers: { authorization: "Bearer good" } });
  assert.equal(r.body, "secret for alice");
  r = await app.inject({ method: "OPTIONS", url: "/_test/secret" });
  assert.equal(r.statusCode, 204);
  assert.equal(r.headers["access-control-allow-origin"], "*");
  r = await app.inject({ method: "POST", url: "/_test/echo/x", payload: JSON.stringify({ name: "x".repeat(2 * 1024 * 1024) }) });
  assert.equal(r.statusCode, 413);
  assert.equal(r.json().errcode, "M_TOO_LARGE");
  await app.close();
});

test("router: repeated query keys reach the query validator; aliases may omit trailing params", async () => {
  const join = endpoint<unknown, { via: string[]; params: Record<string, string> }, { via?: string[] }>({
    id: "test.join",
    api: "client",
    method: "GET",
    path: "/_test/state/{roomId}/{stateKey}",
    aliases: ["/_test/state/{roomId}"],
    auth: "none",
    rateLimited: false,
    query: v.object({ via: v.optional(v.stringList()) }),
  });
  const m = createHttpApp();
  const router = createRouter<undefined>(m, { authenticators: {} });
  router.add(join, ({ parsedQuery, params, query }) => ({ via: parsedQuery.via ?? [], params, first: query.via }));
  await m.app.ready();
  let r = await m.app.inject({ method: "GET", url: "/_test/state/!r:x/k?via=a&via=b" });
  assert.deepEqual(r.json(), { via: ["a", "b"], params: { roomId: "!r:x", stateKey: "k" }, first: "a" });
  r = await m.app.inject({ method: "GET", url: "/_test/state/!r:x?via=c" });
  assert.deepEqual(r.json(), { via: ["c"], params: { roomId: "!r:x", stateKey: "" }, first: "c" });
  r = await m.app.inject({ method: "GET", url: "/_test/state/!r:x?via=1&via=" + "x".repeat(10) + "&via[x]=1" });
  assert.equal(r.statusCode, 200);
  await m.app.close();
});

test("router: a path and its trailing-slash twin are one route (no duplicate-route error)", async () => {
  const m = createHttpApp();
  const router = createRouter<string>(m, { authenticators: {} });
  const twin = endpoint({ id: "test.twin", api: "key", method: "GET", path: "/_test/key/server", aliases: ["/_test/key/server/"], auth: "none", rateLimited: false });
  router.add(twin, () => ({ ok: true }));
  await m.app.ready();
  for (const url of ["/_test/key/server", "/_test/key/server/"]) {
    const r = await m.app.inject({ method: "GET", url });
    assert.equal(r.statusCode, 200, url);
  }
  await m.app.close();
});
