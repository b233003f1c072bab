/**
 * The two fuzz targets over one {@link Stack}: credentials made through the servers' own
 * endpoints (HS registration, OpenID → IS registration, a validated email session, a stored
 * invite and its sign URL), a table of correct example requests per endpoint id, and the
 * known-good request run after every case.
 */
import type { FastifyInstance } from "fastify";
import { allEndpoints, lookupHash, toRoutePattern, type EndpointDescriptor } from "@beckon/protocol";
import type { Example, FuzzCase } from "./gen.js";
import type { FuzzTarget } from "./runner.js";
import { HS_NAME, IS_NAME, type Stack } from "./stack.js";

export interface JsonRes {
  status: number;
  body: Record<string, unknown>;
  text: string;
}

export async function call(app: FastifyInstance, method: "GET" | "POST" | "PUT" | "DELETE", url: string, opts: { token?: string; body?: unknown } = {}): Promise<JsonRes> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const r = await app.inject({ method, url, headers, ...(opts.body !== undefined ? { payload: JSON.stringify(opts.body) } : {}) });
  let body: Record<string, unknown> = {};
  try {
    body = r.body ? (JSON.parse(r.body) as Record<string, unknown>) : {};
  } catch {
    body = {};
  }
  return { status: r.statusCode, body, text: r.body };
}

async function ok(app: FastifyInstance, method: "GET" | "POST" | "PUT" | "DELETE", url: string, opts: { token?: string; body?: unknown } = {}): Promise<Record<string, unknown>> {
  const r = await call(app, method, url, opts);
  if (r.status !== 200) throw new Error(`${method} ${url}: ${r.status} ${r.text.slice(0, 300)}`);
  return r.body;
}

export interface HsUser {
  userId: string;
  token: string;
  localpart: string;
  password: string;
}

let userCounter = 0;
export async function registerHsUser(stack: Stack, prefix: string): Promise<HsUser> {
  const localpart = `${prefix}${++userCounter}_${process.pid}`;
  const password = `pw-${localpart}-secret`;
  const b = await ok(stack.hs.app, "POST", "/_matrix/client/v3/register", { body: { username: localpart, password, auth: { type: "m.login.dummy" } } });
  return { userId: String(b.user_id), token: String(b.access_token), localpart, password };
}

/** An IS token for an HS user (OpenID token from the HS, then IS `account/register`). */
export async function registerIsAccount(stack: Stack, user: HsUser): Promise<string> {
  const openid = await ok(stack.hs.app, "POST", `/_matrix/client/v3/user/${encodeURIComponent(user.userId)}/openid/request_token`, { token: user.token, body: {} });
  const r = await ok(stack.is.app, "POST", "/_matrix/identity/v2/account/register", { body: openid });
  return String(r.token);
}

/** Endpoints whose correct call ends the credential it used: they get a throwaway one. */
export const DESTRUCTIVE = new Set(["client.account.logout", "client.account.logout_all", "client.account.deactivate", "identity.account.logout"]);

export interface World {
  alice: HsUser;
  bob: HsUser;
  sentinel: HsUser;
  throwaway: HsUser;
  roomId: string;
  alias: string;
  sentinelRoom: string;
  aliceIsToken: string;
  sentinelIsToken: string;
  throwawayIsToken: string;
  session: { sid: string; clientSecret: string; email: string; token: string };
  invite: { token: string; privateKey: string; publicKey: string; ephemeralKey: string };
  isPublicKey: string;
  /** An OpenID token of alice (for `openid/userinfo` and IS `account/register`). */
  openid: Record<string, unknown>;
  /** An event alice sent in the room. */
  eventId: string;
}

function served(app: FastifyInstance, d: EndpointDescriptor): boolean {
  return app.hasRoute({ method: d.method, url: toRoutePattern(d.path) });
}

/** Endpoints of `allEndpoints` that `app` serves. */
export function servedEndpoints(app: FastifyInstance): EndpointDescriptor[] {
  return allEndpoints.filter((d) => served(app, d));
}

function linkParams(text: string, path: string): URLSearchParams {
  const i = text.indexOf(path + "?");
  if (i < 0) throw new Error(`no ${path} link in mail`);
  const rest = text.slice(i + path.length + 1);
  const end = rest.search(/[\s"'<>]/);
  return new URLSearchParams((end < 0 ? rest : rest.slice(0, end)).replace(/&amp;/g, "&"));
}

export async function buildWorld(stack: Stack): Promise<World> {
  const hs = stack.hs.app;
  const is = stack.is.app;
  const alice = await registerHsUser(stack, "alice");
  const bob = await registerHsUser(stack, "bob");
  const sentinel = await registerHsUser(stack, "sentinel");
  const throwaway = await registerHsUser(stack, "throwaway");
  const aliasName = `fuzzroom${process.pid}`;
  const room = await ok(hs, "POST", "/_matrix/client/v3/createRoom", { token: alice.token, body: { preset: "public_chat", room_alias_name: aliasName, name: "Fuzz" } });
  const roomId = String(room.room_id);
  await ok(hs, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: bob.token, body: {} });
  const sRoom = await ok(hs, "POST", "/_matrix/client/v3/createRoom", { token: sentinel.token, body: { preset: "private_chat" } });
  const aliceIsToken = await registerIsAccount(stack, alice);
  const sentinelIsToken = await registerIsAccount(stack, sentinel);
  const throwawayIsToken = await registerIsAccount(stack, alice);

  // A validated email session (for bind, getValidated3pid, unbind).
  const email = `alice${process.pid}@example.org`;
  const clientSecret = "fuzzSecret_0123456789";
  const rt = await ok(is, "POST", "/_matrix/identity/v2/validate/email/requestToken", { token: aliceIsToken, body: { client_secret: clientSecret, email, send_attempt: 1 } });
  const sid = String(rt.sid);
  const mail = await waitForMail(stack, (m) => m.to.includes(email));
  const vp = linkParams(mail.text, "/_matrix/identity/v2/validate/email/submitToken");
  const token = vp.get("token") ?? "";
  await ok(is, "POST", "/_matrix/identity/v2/validate/email/submitToken", { token: aliceIsToken, body: { sid, client_secret: clientSecret, token } });

  // A stored invite and the ephemeral key of its sign URL.
  const inviteEmail = `invitee${process.pid}@example.org`;
  const si = await ok(is, "POST", "/_matrix/identity/v2/store-invite", {
    token: aliceIsToken,
    body: { medium: "email", address: inviteEmail, room_id: roomId, sender: alice.userId, room_name: "Fuzz", sender_display_name: "Alice" },
  });
  const inviteMail = await waitForMail(stack, (m) => m.to.includes(inviteEmail));
  const sp = linkParams(inviteMail.text, "/_matrix/identity/v2/sign-ed25519");
  const keys = si.public_keys as { public_key: string }[];
  const pk = await ok(is, "GET", "/_matrix/identity/v2/pubkey/ed25519:0");
  const sent = await ok(hs, "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/world1`, { token: alice.token, body: { msgtype: "m.text", body: "hello" } });
  const openid = await ok(hs, "POST", `/_matrix/client/v3/user/${encodeURIComponent(alice.userId)}/openid/request_token`, { token: alice.token, body: {} });
  return {
    alice,
    bob,
    sentinel,
    throwaway,
    roomId,
    alias: `#${aliasName}:${HS_NAME}`,
    sentinelRoom: String(sRoom.room_id),
    aliceIsToken,
    sentinelIsToken,
    throwawayIsToken,
    session: { sid, clientSecret, email, token },
    invite: { token: String(si.token), privateKey: sp.get("private_key") ?? "", publicKey: keys[0]?.public_key ?? "", ephemeralKey: keys[keys.length - 1]?.public_key ?? "" },
    isPublicKey: String(pk.public_key),
    openid,
    eventId: String(sent.event_id),
  };
}

async function waitForMail(stack: Stack, pred: (m: { to: string; text: string }) => boolean): Promise<{ to: string; text: string }> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const m = stack.mails.find((x) => pred(x));
    if (m) return m;
    if (Date.now() > deadline) throw new Error("mail not sent within 5 s");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Correct requests per endpoint id (the seeds of mutated-valid cases). */
export function examples(w: World): Record<string, Example> {
  const a = w.alice;
  const signed = { mxid: a.userId, sender: a.userId, token: w.invite.token, signatures: { [IS_NAME]: { "ed25519:0": "c2lnbmF0dXJl" } } };
  return {
    "client.account.register": { body: { username: "fuzzreg", password: "pw", auth: { type: "m.login.dummy" } }, query: { kind: "user" } },
    "client.admin.register": { body: { nonce: "abc", username: "admin", password: "pw", admin: false, mac: "00ff" } },
    "client.account.login": { body: { type: "m.login.password", identifier: { type: "m.id.user", user: a.localpart }, password: a.password } },
    "client.account.logout": { body: {} },
    "client.account.logout_all": { body: {} },
    "client.account.deactivate": { body: { auth: { type: "m.login.password", identifier: { type: "m.id.user", user: w.throwaway.localpart }, password: w.throwaway.password }, erase: false } },
    "client.account.openid_request_token": { body: {}, params: { userId: a.userId } },
    "client.profile.set_displayname": { body: { displayname: "Fuzzy" }, params: { userId: a.userId } },
    "client.profile.set_avatar_url": { body: { avatar_url: "mxc://hs.fuzz.test/abc" }, params: { userId: a.userId } },
    "client.rooms.create": { body: { preset: "private_chat", name: "r", topic: "t", invite: [w.bob.userId], room_version: "10", visibility: "private" } },
    "client.rooms.get_state_event": { params: { eventType: "m.room.create", stateKey: "" }, query: { format: "content" } },
    "client.rooms.set_state_event": { params: { eventType: "m.room.topic", stateKey: "" }, body: { topic: "fuzzed" } },
    "client.rooms.send": { params: { eventType: "m.room.message", txnId: "txn1" }, body: { msgtype: "m.text", body: "hello" } },
    "client.rooms.messages": { query: { dir: "b", limit: "5" } },
    "client.rooms.members": { query: { membership: "join" } },
    "client.directory.set_alias": { params: { roomAlias: `#other:${HS_NAME}` }, body: { room_id: w.roomId } },
    "client.directory.delete_alias": { params: { roomAlias: `#other:${HS_NAME}` } },
    "client.membership.invite": { body: { id_server: IS_NAME, id_access_token: w.aliceIsToken, medium: "email", address: "carol@example.org" } },
    "client.membership.join_id_or_alias": { params: { roomIdOrAlias: w.alias }, query: { via: HS_NAME }, body: {} },
    "client.membership.join": { body: { reason: "r" } },
    "client.membership.leave": { body: {} },
    "client.membership.forget": { body: {} },
    "client.membership.kick": { body: { user_id: w.bob.userId, reason: "r" } },
    "client.membership.ban": { body: { user_id: w.bob.userId } },
    "client.membership.unban": { body: { user_id: w.bob.userId } },
    "client.sync.sync": { query: { timeout: "0", filter: '{"room":{"timeline":{"limit":1}}}' } },
    "client.3pid.bind": { body: { client_secret: w.session.clientSecret, id_server: IS_NAME, id_access_token: w.aliceIsToken, sid: w.session.sid } },
    "client.3pid.unbind": { body: { medium: "email", address: w.session.email, id_server: IS_NAME } },
    "client.3pid.delete": { body: { medium: "email", address: w.session.email, id_server: IS_NAME } },
    "federation.3pid.onbind_post": {
      body: { medium: "email", address: "x@example.org", mxid: a.userId, invites: [{ medium: "email", address: "x@example.org", mxid: a.userId, room_id: w.roomId, sender: a.userId, signed }] },
    },
    "federation.3pid.onbind_put": { body: { medium: "email", address: "x@example.org", mxid: a.userId, invites: [] } },
    "federation.openid.userinfo": { query: { access_token: String(w.openid.access_token) } },
    "identity.account.register": { body: w.openid },
    "identity.account.logout": { body: {} },
    "identity.terms.accept": { body: { user_accepts: ["https://example.org/terms"] } },
    "identity.lookup.lookup": { body: { addresses: [lookupHash(w.session.email, "email", "matrixrocks")], algorithm: "sha256", pepper: "matrixrocks" } },
    "identity.validate.email_request_token": { body: { client_secret: "otherSecret_1", email: "dave@example.org", send_attempt: 1, next_link: "https://example.org/next" } },
    "identity.validate.email_submit_token": { body: { sid: w.session.sid, client_secret: w.session.clientSecret, token: w.session.token } },
    "identity.validate.email_submit_token_get": { query: { sid: w.session.sid, client_secret: w.session.clientSecret, token: w.session.token } },
    "identity.validate.msisdn_request_token": { body: { client_secret: "otherSecret_2", country: "GB", phone_number: "07700900123", send_attempt: 1 } },
    "identity.validate.msisdn_submit_token": { body: { sid: "1", client_secret: "otherSecret_2", token: "123456" } },
    "identity.3pid.get_validated": { query: { sid: w.session.sid, client_secret: w.session.clientSecret } },
    "identity.3pid.bind": { body: { sid: w.session.sid, client_secret: w.session.clientSecret, mxid: a.userId } },
    "identity.3pid.unbind": { body: { mxid: a.userId, threepid: { medium: "email", address: w.session.email }, sid: w.session.sid, client_secret: w.session.clientSecret } },
    "identity.invite.store": { body: { medium: "email", address: "erin@example.org", room_id: w.roomId, sender: a.userId, room_name: "Fuzz", sender_display_name: "Alice" } },
    "identity.invite.sign_ed25519": { body: { mxid: w.bob.userId, token: w.invite.token, private_key: w.invite.privateKey } },
    "identity.pubkey.get": { params: { keyId: "ed25519:0" } },
    "identity.pubkey.is_valid": { query: { public_key: w.isPublicKey } },
    "identity.pubkey.ephemeral_is_valid": { query: { public_key: w.invite.ephemeralKey } },
  };
}

/** Every secret of a world, by name (for grepping logs). */
export function secretsOf(w: World): Record<string, string> {
  return {
    "alice's access token": w.alice.token,
    "bob's access token": w.bob.token,
    "the sentinel's access token": w.sentinel.token,
    "alice's password": w.alice.password,
    "alice's IS token": w.aliceIsToken,
    "the sentinel's IS token": w.sentinelIsToken,
    "the validation token": w.session.token,
    "the client secret": w.session.clientSecret,
    "the invite token": w.invite.token,
    "the ephemeral private key": w.invite.privateKey,
    "alice's OpenID token": String(w.openid.access_token),
    "the registration shared secret": "fuzz-shared-secret",
  };
}

function paramPool(w: World): Record<string, string> {
  return { roomId: w.roomId, userId: w.alice.userId, eventType: "m.room.message", stateKey: "", txnId: "t", roomAlias: w.alias, roomIdOrAlias: w.roomId, keyId: "ed25519:0", eventId: w.eventId };
}

/** Long-polls are not bad input: keep `/sync` from waiting (any numeric timeout becomes 0). */
function boundLongPoll(c: FuzzCase): FuzzCase {
  if (c.target !== "client.sync.sync" && !c.path.includes("/sync")) return c;
  return { ...c, query: c.query.replace(/(^|&)timeout=([^&]*)/g, (m, p: string, val: string) => (/\d/.test(val) ? `${p}timeout=0` : m)) };
}

function rawBody(c: FuzzCase): string {
  return c.body.kind === "json" ? (JSON.stringify(c.body.value) ?? "") : c.body.kind === "text" ? c.body.text : c.body.kind === "bytes" ? Buffer.from(c.body.hex, "hex").toString("latin1") : "";
}

function namesUpIdentityServer(c: FuzzCase): boolean {
  return rawBody(c).includes(`"id_server":"${IS_NAME}"`);
}

export function homeserverTarget(stack: Stack, w: World): FuzzTarget {
  const hs = stack.hs.app;
  let throwaway = w.throwaway;
  return {
    name: "homeserver",
    app: hs,
    endpoints: servedEndpoints(hs),
    examples: examples(w),
    paramPool: paramPool(w),
    tokenFor: (d) => (d && DESTRUCTIVE.has(d.id) ? throwaway.token : w.alice.token),
    unknownPrefixes: ["/_matrix/client/v3", "/_matrix/client/r0", "/_matrix/federation/v1", "/_matrix/key/v2", "/_synapse/admin/v1", "/_matrix", "", "/.well-known/matrix"],
    async knownGood(i) {
      const r = await call(hs, "GET", "/_matrix/client/v3/account/whoami", { token: w.sentinel.token });
      if (r.status !== 200 || r.body.user_id !== w.sentinel.userId) throw new Error(`whoami: ${r.status} ${r.text.slice(0, 200)}`);
      if (i % 50 === 0) {
        const s = await call(hs, "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(w.sentinelRoom)}/send/m.room.message/kg${i}`, { token: w.sentinel.token, body: { msgtype: "m.text", body: `ping ${i}` } });
        if (s.status !== 200) throw new Error(`send: ${s.status} ${s.text.slice(0, 200)}`);
      }
    },
    async afterCase(c) {
      if (!DESTRUCTIVE.has(c.target)) return;
      const r = await call(hs, "GET", "/_matrix/client/v3/account/whoami", { token: throwaway.token });
      if (r.status !== 200) throwaway = await registerHsUser(stack, "throwaway");
    },
    adjust: boundLongPoll,
    // The identity server of this stack is always up: a 502/504 for a request naming it is wrong.
    peerErrorIsRight: (c) => !namesUpIdentityServer(c),
  };
}

export function identityTarget(stack: Stack, w: World): FuzzTarget {
  const is = stack.is.app;
  let throwaway = w.throwawayIsToken;
  return {
    name: "identity-server",
    app: is,
    endpoints: servedEndpoints(is),
    examples: examples(w),
    paramPool: paramPool(w),
    tokenFor: (d) => (d && DESTRUCTIVE.has(d.id) ? throwaway : w.aliceIsToken),
    unknownPrefixes: ["/_matrix/identity/v2", "/_matrix/identity/api/v1", "/_matrix/identity", "/_matrix", ""],
    async knownGood(i) {
      const r = await call(is, "GET", "/_matrix/identity/v2/account", { token: w.sentinelIsToken });
      if (r.status !== 200 || r.body.user_id !== w.sentinel.userId) throw new Error(`account: ${r.status} ${r.text.slice(0, 200)}`);
      if (i % 50 === 0) {
        const l = await call(is, "POST", "/_matrix/identity/v2/lookup", {
          token: w.sentinelIsToken,
          body: { addresses: [lookupHash(w.session.email, "email", "matrixrocks")], algorithm: "sha256", pepper: "matrixrocks" },
        });
        if (l.status !== 200) throw new Error(`lookup: ${l.status} ${l.text.slice(0, 200)}`);
      }
    },
    // The homeserver of this stack is always up: a 502/504 for a request naming it is wrong.
    peerErrorIsRight: (c) => !rawBody(c).includes(`"matrix_server_name":"${HS_NAME}"`),
    async afterCase(c) {
      if (!DESTRUCTIVE.has(c.target)) return;
      const r = await call(is, "GET", "/_matrix/identity/v2/account", { token: throwaway });
      if (r.status !== 200) throwaway = await registerIsAccount(stack, w.alice);
    },
  };
}
