/**
 * The room core's side of 3PID invites (issue 9, "all or nothing"): createRoom with
 * `invite_3pid` does the identity-server work before committing anything; revocation is an
 * `m.room.third_party_invite` with empty content. The identity server here is a hand-written
 * fake behind the outbound client (no sockets).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { encodeBase64, lookupHash, signJson } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { randomBytes } from "node:crypto";
import type { OutboundLike, OutboundResponse } from "../../identity/outbound.js";
import { call, enc, registerUser, startTestHomeserver, type TestHomeserver, type TestUser } from "../../testing.js";

const C = "/_matrix/client/v3";
const PEPPER = "matrixrocks";

function json(status: number, body: unknown): OutboundResponse {
  const text = JSON.stringify(body);
  return { status, headers: { "content-type": "application/json" }, text, json: () => JSON.parse(text) as unknown };
}

/** A fake identity server: `bound` maps addresses to user IDs; `down` makes every request fail like a refused connection. */
class FakeIdentityServer implements OutboundLike {
  readonly seed = new Uint8Array(randomBytes(32));
  readonly publicKey = encodeBase64(nodeCryptoProvider.ed25519PublicKeySync(this.seed));
  valid = true;
  down = false;
  bound = new Map<string, string>();
  storeInvites = 0;
  requests: string[] = [];
  async request(url: string, options: { method?: string; body?: string } = {}): Promise<OutboundResponse> {
    this.requests.push(`${options.method ?? "GET"} ${url}`);
    if (this.down) throw Object.assign(new Error("connect ECONNREFUSED"), { kind: "network" });
    const path = new URL(url).pathname;
    if (path.endsWith("/hash_details")) return json(200, { lookup_pepper: PEPPER, algorithms: ["none", "sha256"] });
    if (path.endsWith("/lookup")) {
      const body = JSON.parse(options.body ?? "{}") as { addresses: string[] };
      const mappings: Record<string, string> = {};
      for (const [addr, mxid] of this.bound) {
        const h = lookupHash(addr, "email", PEPPER);
        if (body.addresses.includes(h)) mappings[h] = mxid;
      }
      return json(200, { mappings });
    }
    if (path.endsWith("/pubkey/isvalid")) return json(200, { valid: this.valid });
    if (path.endsWith("/store-invite")) {
      this.storeInvites++;
      const key = this.publicKey;
      return json(200, {
        token: `tok${this.storeInvites}`,
        public_key: key,
        public_keys: [{ public_key: key, key_validity_url: "http://127.0.0.1:8090/_matrix/identity/v2/pubkey/isvalid" }],
        display_name: "car...@exa...",
      });
    }
    return json(404, { errcode: "M_UNRECOGNIZED", error: "no" });
  }
}

describe("createRoom with invite_3pid and 3PID revocation", () => {
  let t: TestHomeserver;
  let is: FakeIdentityServer;
  let alice: TestUser;
  let bob: TestUser;
  const entry = (address: string) => ({ id_server: "localhost:8090", id_access_token: "istoken", medium: "email", address });
  before(async () => {
    is = new FakeIdentityServer();
    t = await startTestHomeserver({ outbound: is, overrides: { identity_servers: { map: { "localhost:8090": "http://127.0.0.1:8090" } } } });
    alice = await registerUser(t.hs, "alice");
    bob = await registerUser(t.hs, "bob");
  });
  after(() => t.close());

  it("identity server down: 502-class error and no room at all", async () => {
    is.down = true;
    try {
      const roomsBefore = await t.hs.storage.rooms.listRoomIds();
      const pos = await t.hs.storage.rooms.currentStreamPos();
      const r = await call(t.hs, "POST", `${C}/createRoom`, { token: alice.token, body: { name: "X", invite_3pid: [entry("carol@example.org")] } });
      assert.ok(r.status === 502 || r.status === 504, `status ${r.status}`);
      assert.equal(r.body.errcode, "M_UNKNOWN");
      assert.deepEqual(await t.hs.storage.rooms.listRoomIds(), roomsBefore);
      assert.equal(await t.hs.storage.rooms.currentStreamPos(), pos, "no events");
      assert.deepEqual((await call(t.hs, "GET", `${C}/joined_rooms`, { token: alice.token })).body.joined_rooms, []);
    } finally {
      is.down = false;
    }
  });

  it("a room that cannot be created never reaches the identity server", async () => {
    const n = is.requests.length;
    const r = await call(t.hs, "POST", `${C}/createRoom`, {
      token: alice.token,
      body: { initial_state: [{ type: "m.room.power_levels", content: { ban: "50" } }], invite_3pid: [entry("erin@example.org")] },
    });
    assert.equal(r.status, 403);
    assert.equal(is.requests.length, n, "no lookup, no store-invite, no mail");
  });

  it("missing id_access_token is 400 M_MISSING_PARAM, before anything", async () => {
    const n = is.requests.length;
    const r = await call(t.hs, "POST", `${C}/createRoom`, { token: alice.token, body: { invite_3pid: [{ id_server: "localhost:8090", medium: "email", address: "x@example.org" }] } });
    assert.equal(r.status, 400);
    assert.equal(r.body.errcode, "M_MISSING_PARAM");
    assert.equal(is.requests.length, n);
  });

  it("a known address becomes an ordinary invite; an unknown one an m.room.third_party_invite, after the other invites", async () => {
    is.bound.set("bob@example.org", bob.userId);
    const r = await call(t.hs, "POST", `${C}/createRoom`, { token: alice.token, body: { name: "Both", invite_3pid: [entry("bob@example.org"), entry("carol@example.org")] } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const roomId = r.body.room_id as string;
    const member = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`, { token: alice.token });
    assert.equal(member.body.membership, "invite");
    const state = (await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state`, { token: alice.token })).body as unknown as { type: string; state_key: string; content: Record<string, unknown> }[];
    const tpi = state.filter((e) => e.type === "m.room.third_party_invite");
    assert.equal(tpi.length, 1);
    assert.equal(tpi[0]!.content.display_name, "car...@exa...");
    assert.ok(Array.isArray(tpi[0]!.content.public_keys));
    const events = await t.hs.storage.rooms.getRoomEvents(roomId, { dir: "f", after: 0, upTo: Number.MAX_SAFE_INTEGER, limit: 50 });
    const types = events.map((e) => e.type);
    assert.ok(types.indexOf("m.room.name") < types.lastIndexOf("m.room.member"));
    assert.equal(types[types.length - 1], "m.room.third_party_invite");
    // Bob sees the invite in sync.
    const s = await call(t.hs, "GET", `${C}/sync`, { token: bob.token });
    assert.ok((s.body.rooms as { invite: Record<string, unknown> }).invite[roomId]);

    // A repeated 3PID invite while that one is pending: 200 {} and nothing else.
    const storeBefore = is.storeInvites;
    const pos = await t.hs.storage.rooms.currentStreamPos();
    const again = await call(t.hs, "POST", `${C}/rooms/${enc(roomId)}/invite`, { token: alice.token, body: entry("carol@example.org") });
    assert.equal(again.status, 200);
    assert.equal(is.storeInvites, storeBefore);
    assert.equal(await t.hs.storage.rooms.currentStreamPos(), pos);

    // Revocation: same state key, empty content, by someone with invite power.
    const token = tpi[0]!.state_key;
    const rev = await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/state/m.room.third_party_invite/${enc(token)}`, { token: alice.token, body: {} });
    assert.equal(rev.status, 200);
    const after = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state/m.room.third_party_invite/${enc(token)}`, { token: alice.token });
    assert.deepEqual(after.body, {});
    // Bob (invited, not joined) cannot revoke.
    const notJoined = await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/state/m.room.third_party_invite/${enc(token)}`, { token: bob.token, body: {} });
    assert.equal(notJoined.status, 403);
  });

  it("3PID invite by POST rooms/{id}/invite: the inviter's permission is checked before the identity server is contacted", async () => {
    const roomId = (await call(t.hs, "POST", `${C}/createRoom`, { token: alice.token, body: { preset: "public_chat" } })).body.room_id as string;
    await call(t.hs, "POST", `${C}/join/${enc(roomId)}`, { token: bob.token, body: {} });
    const n = is.requests.length;
    const r = await call(t.hs, "POST", `${C}/rooms/${enc(roomId)}/invite`, { token: bob.token, body: entry("dave@example.org") });
    assert.equal(r.status, 403);
    assert.equal(is.requests.length, n);
    const ok = await call(t.hs, "POST", `${C}/rooms/${enc(roomId)}/invite`, { token: alice.token, body: entry("dave@example.org") });
    assert.equal(ok.status, 200);
  });

  it("join with third_party_signed: the invite and the join in one step; refused after revocation or with valid:false", async () => {
    const carol = await registerUser(t.hs, "carol3");
    const roomId = (await call(t.hs, "POST", `${C}/createRoom`, { token: alice.token, body: { preset: "private_chat" } })).body.room_id as string;
    const inv = async (address: string) => {
      assert.equal((await call(t.hs, "POST", `${C}/rooms/${enc(roomId)}/invite`, { token: alice.token, body: entry(address) })).status, 200);
      const state = (await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state`, { token: alice.token })).body as unknown as { type: string; state_key: string; content: Record<string, unknown> }[];
      return state.filter((e) => e.type === "m.room.third_party_invite" && Object.keys(e.content).length > 0).map((e) => e.state_key);
    };
    const tokens = await inv("carol3@example.org");
    const token = tokens[tokens.length - 1]!;
    const sign = (mxid: string, tok: string) => signJson({ mxid, sender: alice.userId, token: tok }, "localhost:8090", "ed25519:0", is.seed, nodeCryptoProvider);
    // Signed for someone else: refused.
    const other = await call(t.hs, "POST", `${C}/join/${enc(roomId)}`, { token: carol.token, body: { third_party_signed: await sign(bob.userId, token) } });
    assert.equal(other.status, 403);
    // valid:false at the key_validity_url: refused, nothing created.
    is.valid = false;
    const invalid = await call(t.hs, "POST", `${C}/join/${enc(roomId)}`, { token: carol.token, body: { third_party_signed: await sign(carol.userId, token) } });
    assert.equal(invalid.status, 403);
    assert.equal((await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state/m.room.member/${enc(carol.userId)}`, { token: alice.token })).status, 404);
    is.valid = true;
    const ok = await call(t.hs, "POST", `${C}/join/${enc(roomId)}`, { token: carol.token, body: { third_party_signed: await sign(carol.userId, token) } });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const events = await t.hs.storage.rooms.getRoomEvents(roomId, { dir: "b", upTo: Number.MAX_SAFE_INTEGER, limit: 2 });
    const [join, invite] = events;
    assert.equal(join?.pdu.content.membership, "join");
    assert.equal(invite?.pdu.content.membership, "invite");
    assert.equal(invite?.sender, alice.userId, "the invite's sender is the original inviter");
    const tpi = invite?.pdu.content.third_party_invite as { display_name: string; signed: { token: string } };
    assert.equal(tpi.display_name, "car...@exa...");
    assert.equal(tpi.signed.token, token);
    // Revoked: a join with a blob for that token is refused.
    const dave = await registerUser(t.hs, "dave3");
    const tokens2 = await inv("dave3@example.org");
    const token2 = tokens2.find((x) => x !== token)!;
    assert.equal((await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/state/m.room.third_party_invite/${enc(token2)}`, { token: alice.token, body: {} })).status, 200);
    const revoked = await call(t.hs, "POST", `${C}/join/${enc(roomId)}`, { token: dave.token, body: { third_party_signed: await sign(dave.userId, token2) } });
    assert.equal(revoked.status, 403);
    assert.equal((await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state/m.room.member/${enc(dave.userId)}`, { token: alice.token })).status, 404);
  });
});
