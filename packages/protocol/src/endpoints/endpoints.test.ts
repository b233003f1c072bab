import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { isMatrixError } from "../errors.js";
import {
  allEndpoints,
  allPaths,
  buildPath,
  getStateEvent,
  invite,
  isEmailRequestToken,
  isInvite3pidRequest,
  isSignEd25519,
  isStoreInvite,
  isStatus,
  pathParams,
  serverKeys,
  servedPaths,
  toRoutePattern,
  vClientSecret,
  vCreateRoomRequest,
  vIdServer,
  vInviteRequest,
  vRoomId,
  vUserId,
} from "./index.js";

function errcodeOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    assert.ok(isMatrixError(e), `not a MatrixError: ${String(e)}`);
    return e.errcode;
  }
}

test("descriptor ids are unique and well-formed", () => {
  const ids = new Set<string>();
  for (const d of allEndpoints) {
    assert.match(d.id, /^[a-z]+\.[a-z0-9_]+\.[a-z0-9_]+$/, d.id);
    assert.ok(!ids.has(d.id), `duplicate id ${d.id}`);
    ids.add(d.id);
    assert.ok(d.id.startsWith(d.api + "."), `${d.id} does not start with its api ${d.api}`);
  }
  assert.ok(allEndpoints.length >= 60, `only ${allEndpoints.length} endpoints`);
});

test("no two descriptors claim the same method and path", () => {
  const seen = new Map<string, string>();
  for (const d of allEndpoints) {
    for (const p of allPaths(d)) {
      // Routers ignore trailing slashes: paths that differ only by one would collide.
      const k = `${d.method} ${toRoutePattern(p).replace(/:[A-Za-z0-9_]+/g, ":").replace(/(.)\/$/, "$1")}`;
      assert.ok(!seen.has(k), `${k} claimed by ${seen.get(k)} and ${d.id}`);
      seen.set(k, d.id);
    }
  }
});

test("path parameters are consistent", () => {
  for (const d of allEndpoints) {
    assert.ok(d.path.startsWith("/"), d.id);
    const params = pathParams(d.path);
    assert.equal(new Set(params).size, params.length, `${d.id}: repeated parameter`);
    for (const alias of d.aliases ?? []) {
      const ap = pathParams(alias);
      // An alias has the same parameters, or a prefix of them (the empty-state-key forms).
      assert.deepEqual(ap, params.slice(0, ap.length), `${d.id}: alias ${alias}`);
      assert.notEqual(alias, d.path, `${d.id}: alias equals path`);
    }
    // Every `{` opens a well-formed parameter; no stray braces.
    for (const p of allPaths(d)) assert.equal(p.replace(/\{[A-Za-z0-9_]+\}/g, "").match(/[{}]/), null, `${d.id}: ${p}`);
    const filled = Object.fromEntries(params.map((p) => [p, "x:y/z?#"]));
    const built = buildPath(d, filled);
    assert.ok(!built.includes("{"), built);
    for (const p of params) assert.ok(built.includes("x%3Ay%2Fz%3F%23"), `${d.id}: ${p} not encoded`);
    if (d.method === "GET" || d.method === "DELETE") assert.equal(d.body, undefined, `${d.id}: GET/DELETE with a body validator`);
    if (d.body === undefined) assert.notEqual(d.bodyOptional, true, d.id);
  }
});

test("empty state key aliases", () => {
  const paths = allPaths(getStateEvent);
  assert.ok(paths.includes("/_matrix/client/v3/rooms/{roomId}/state/{eventType}"));
  assert.ok(servedPaths(getStateEvent).includes("/_matrix/client/v3/rooms/{roomId}/state/{eventType}/"));
  assert.ok(servedPaths(serverKeys).includes("/_matrix/key/v2/server/"));
  assert.ok(servedPaths(isStatus).includes("/_matrix/identity/v2/"));
  assert.ok(paths.includes("/_matrix/client/r0/rooms/{roomId}/state/{eventType}/{stateKey}"));
  assert.equal(buildPath(getStateEvent, { roomId: "!a:b", eventType: "m.room.name", stateKey: "" }), "/_matrix/client/v3/rooms/!a%3Ab/state/m.room.name/");
});

test("buildPath requires every parameter", () => {
  assert.throws(() => buildPath(invite, {}), TypeError);
  assert.equal(buildPath(invite, { roomId: "!r:example.org" }), "/_matrix/client/v3/rooms/!r%3Aexample.org/invite");
});

test("invite accepts both body forms", () => {
  const user = vInviteRequest({ user_id: "@bob:example.org", reason: "hi" });
  assert.equal(isInvite3pidRequest(user), false);
  const tp = vInviteRequest({ id_server: "localhost:8090", id_access_token: "t", medium: "email", address: "a@b.c" });
  assert.equal(isInvite3pidRequest(tp), true);
  assert.equal(errcodeOf(() => vInviteRequest({})), "M_MISSING_PARAM");
  assert.equal(errcodeOf(() => vInviteRequest({ medium: "email", address: "a@b.c", id_server: "x" })), "M_MISSING_PARAM");
  assert.equal(errcodeOf(() => vInviteRequest({ user_id: "bob" })), "M_INVALID_PARAM");
  assert.equal(errcodeOf(() => vInviteRequest([])), "M_BAD_JSON");
  assert.equal(errcodeOf(() => vInviteRequest({ medium: "email", address: "a@b.c", id_server: "https://x", id_access_token: "t" })), "M_INVALID_PARAM");
});

test("createRoom invite_3pid entries need all four fields", () => {
  assert.equal(errcodeOf(() => vCreateRoomRequest({ invite_3pid: [{ medium: "email", address: "a@b.c", id_server: "x" }] })), "M_MISSING_PARAM");
  const ok = vCreateRoomRequest({ preset: "private_chat", room_version: "10", invite: ["@a:b"], initial_state: [{ type: "m.room.topic", content: {} }] });
  assert.equal(ok.preset, "private_chat");
});

test("requestToken accepts send_attempt as a number or a numeric string", () => {
  const body = { client_secret: "abc", email: "a@b.c" };
  assert.equal(isEmailRequestToken.body!({ ...body, send_attempt: "2" }).send_attempt, 2);
  assert.equal(isEmailRequestToken.body!({ ...body, send_attempt: 3 }).send_attempt, 3);
  assert.equal(errcodeOf(() => isEmailRequestToken.body!({ ...body, send_attempt: "two" })), "M_INVALID_PARAM");
  assert.equal(errcodeOf(() => isEmailRequestToken.body!({ ...body, client_secret: "bad secret!", send_attempt: 1 })), "M_INVALID_PARAM");
});

test("sign-ed25519 takes its parameters from the query or the body", () => {
  assert.deepEqual(isSignEd25519.body!({}), {});
  assert.equal(isSignEd25519.query!({ token: "t", private_key: "k", mxid: "@a:b" }).token, "t");
  assert.ok(allPaths(isSignEd25519).includes("/_matrix/identity/api/v1/sign-ed25519"));
  assert.equal(isSignEd25519.auth, "none");
});

test("store-invite tolerates Synapse's empty strings and rejects a bad room id", () => {
  const ok = isStoreInvite.body!({ medium: "email", address: "a@b.c", room_id: "!r:s", sender: "@a:s", room_alias: "", room_name: "" });
  assert.equal(ok.room_alias, "");
  assert.equal(errcodeOf(() => isStoreInvite.body!({ medium: "email", address: "a@b.c", room_id: "r", sender: "@a:s" })), "M_INVALID_PARAM");
  const res = isStoreInvite.response!({ token: "t", public_keys: [{ public_key: "k", key_validity_url: "u" }], display_name: "a...@b..." });
  assert.equal(res.token, "t");
});

test("every body validator: a non-object body is M_BAD_JSON, {} passes or is M_MISSING_PARAM", () => {
  for (const d of allEndpoints) {
    if (!d.body) continue;
    for (const bad of [null, [], "x", 1, true]) assert.equal(errcodeOf(() => d.body!(bad)), "M_BAD_JSON", `${d.id} ${JSON.stringify(bad)}`);
    const code = errcodeOf(() => d.body!({}));
    assert.ok(code === undefined || code === "M_MISSING_PARAM", `${d.id}: {} gave ${code}`);
    if (d.bodyOptional) assert.equal(code, undefined, `${d.id}: optional body must accept {}`);
  }
});

const anyJson = fc.jsonValue({ maxDepth: 3 });
test("property: validators only ever throw 4xx MatrixErrors (fuzzing bodies and queries)", () => {
  const withBody = allEndpoints.filter((d) => d.body);
  const withQuery = allEndpoints.filter((d) => d.query);
  fc.assert(
    fc.property(
      fc.constantFrom(...withBody),
      fc.dictionary(fc.constantFrom("user_id", "medium", "address", "id_server", "id_access_token", "room_id", "sender", "mxid", "token", "sid", "client_secret", "send_attempt", "invites", "threepid", "third_party_signed", "auth", "type", "x"), anyJson, { noNullPrototype: true }),
      (d, body) => {
        try {
          d.body!(body);
        } catch (e) {
          assert.ok(isMatrixError(e) && e.status >= 400 && e.status < 500, `${d.id}: ${String(e)}`);
        }
      },
    ),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.constantFrom(...withQuery), fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 })), { noNullPrototype: true }), (d, q) => {
      try {
        d.query!(q);
      } catch (e) {
        assert.ok(isMatrixError(e) && e.status >= 400 && e.status < 500, `${d.id}: ${String(e)}`);
      }
    }),
    { numRuns: 1000 },
  );
});

test("identifier and id_server validators", () => {
  for (const ok of ["localhost:8090", "127.0.0.1:8090", "[::1]:8090", "matrix.org", "id.example.org/path"]) assert.equal(vIdServer(ok), ok);
  for (const bad of ["https://matrix.org", "", "a b", "x?y", "user@host", "a".repeat(256)]) assert.equal(errcodeOf(() => vIdServer(bad)), "M_INVALID_PARAM", bad);
  assert.equal(vUserId("@a:b"), "@a:b");
  assert.equal(errcodeOf(() => vUserId("a:b")), "M_INVALID_PARAM");
  assert.equal(errcodeOf(() => vRoomId(1)), "M_INVALID_PARAM");
  assert.equal(errcodeOf(() => vClientSecret("has space")), "M_INVALID_PARAM");
  assert.equal(vClientSecret("aA0.=_-"), "aA0.=_-");
});
