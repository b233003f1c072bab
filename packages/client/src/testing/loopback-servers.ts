/**
 * TEST ONLY (not exported from the package, uses `node:`): a small homeserver and identity
 * server on 127.0.0.1 (port 0) that answer the SDK's calls the way the spec says, with counters
 * and fault injection. The SDK's integration and browser tests run against it until the real
 * servers exist; the e2e suite later runs the same flows against Beckon's servers.
 *
 * Scope: accounts (register with m.login.dummy, login, whoami, OpenID), rooms (create, state,
 * send, members, joined_rooms, sync long-poll), membership (invite by user ID or 3PID, join incl.
 * `third_party_signed`, leave), and an identity server (OpenID registration, terms, hash_details,
 * lookup, store-invite with an ephemeral key and a "mail", sign-ed25519, bind with onbind).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { encodeBase64, lookupHash, normalizeEmail, signJson, verifyJsonSignature, nodeCryptoProvider, type ClientEvent } from "@beckon/protocol/node";

export interface Fault {
  readonly method: string;
  /** Matches when the request path (without query) ends with this. */
  readonly pathEndsWith: string;
  /** `destroy`: read the request, then drop the connection without answering. */
  readonly action: "destroy" | { status: number; body: unknown; headers?: Record<string, string> };
  /** How many requests it applies to (default 1). */
  times?: number;
}

interface Room {
  id: string;
  state: Map<string, ClientEvent & { pos: number }>;
  timeline: (ClientEvent & { pos: number })[];
}

export interface Mail {
  to: string;
  roomId: string;
  token: string;
  signUrl: string;
}

export interface LoopbackOptions {
  /** The identity server answers 403 M_TERMS_NOT_SIGNED until its terms are accepted. */
  readonly termsRequired?: boolean;
  /** Lookup algorithms offered (default `["none", "sha256"]`). */
  readonly algorithms?: string[];
}

export interface LoopbackServers {
  readonly hsUrl: string;
  readonly isUrl: string;
  readonly hsName: string;
  readonly isName: string;
  /** Requests seen, by `"METHOD /path"` (path without query). */
  readonly counts: Map<string, number>;
  readonly mails: Mail[];
  readonly faults: Fault[];
  /** Address → mxid bindings at the identity server. */
  readonly bindings: Map<string, string>;
  /** Binds an address to a user and delivers its pending invites (like onbind). */
  bind(address: string, mxid: string): Promise<void>;
  pepper: string;
  /** Extra GET responses of the homeserver's listener (the browser test serves its page and bundle here). */
  readonly files: Map<string, { contentType: string; body: string }>;
  close(): Promise<void>;
}

class Reply extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`reply ${status}`);
  }
}
const err = (status: number, errcode: string, error: string, extra: Record<string, unknown> = {}): Reply => new Reply(status, { errcode, error, ...extra });

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  if (!text) return {};
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw err(400, "M_NOT_JSON", "body is not a JSON object");
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
}

const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
  "access-control-allow-headers": "Authorization, Content-Type, Accept",
};

type Handler = (req: IncomingMessage, url: URL, m: RegExpMatchArray) => Promise<unknown>;

export async function startLoopbackServers(opts: LoopbackOptions = {}): Promise<LoopbackServers> {
  const hsServer = createServer();
  const isServer = createServer();
  const [hsPort, isPort] = await Promise.all([listen(hsServer), listen(isServer)]);
  const hsName = `localhost:${hsPort}`;
  const isName = `127.0.0.1:${isPort}`;
  const hsUrl = `http://127.0.0.1:${hsPort}`;
  const isUrl = `http://127.0.0.1:${isPort}`;
  const counts = new Map<string, number>();
  const faults: Fault[] = [];
  const mails: Mail[] = [];
  const bindings = new Map<string, string>();
  const waiters = new Set<() => void>();

  // ── homeserver state ──
  const users = new Map<string, string>(); // userId → password
  const tokens = new Map<string, string>(); // access token → userId
  const openIds = new Map<string, string>(); // OpenID token → userId
  const rooms = new Map<string, Room>();
  const accountData = new Map<string, Record<string, unknown>>(); // "userId\0type" → content
  let pos = 0;
  let seq = 0;
  // ── identity-server state ──
  const isTokens = new Map<string, string>();
  const acceptedTerms = new Set<string>();
  const invites = new Map<string, { address: string; roomId: string; sender: string; seed: Uint8Array; publicKey: string }>();
  const pending = new Map<string, string>(); // room|sender|address → token (dedupe)
  const seeds = new Map<string, string>();
  const servers: LoopbackServers = {
    hsUrl,
    isUrl,
    hsName,
    isName,
    counts,
    mails,
    faults,
    bindings,
    pepper: "matrixrocks",
    files: new Map(),
    bind: async (address, mxid) => {
      const a = normalizeEmail(address);
      bindings.set(a, mxid);
      for (const [token, inv] of invites) {
        if (inv.address !== a) continue;
        invites.delete(token);
        const room = rooms.get(inv.roomId);
        const tpi = room?.state.get(`m.room.third_party_invite\0${token}`);
        if (!room || !tpi || Object.keys(tpi.content).length === 0) continue;
        const signed = await signJson({ mxid, token, sender: inv.sender }, isName, "ed25519:0", inv.seed, nodeCryptoProvider);
        send(room, inv.sender, "m.room.member", mxid, { membership: "invite", third_party_invite: { display_name: tpi.content["display_name"], signed } });
      }
    },
    close: async () => {
      for (const w of waiters) w();
      hsServer.closeAllConnections();
      isServer.closeAllConnections();
      await Promise.all([new Promise((r) => hsServer.close(r)), new Promise((r) => isServer.close(r))]);
    },
  };

  function send(room: Room, sender: string, type: string, stateKey: string | undefined, content: Record<string, unknown>): ClientEvent {
    const ev = {
      type,
      content,
      sender,
      room_id: room.id,
      event_id: `$${randomBytes(32).toString("base64url")}`,
      origin_server_ts: Date.now(),
      ...(stateKey !== undefined ? { state_key: stateKey } : {}),
      pos: ++pos,
    } as ClientEvent & { pos: number };
    const prev = stateKey !== undefined ? room.state.get(`${type}\0${stateKey}`) : undefined;
    if (prev) ev.unsigned = { prev_content: prev.content };
    room.timeline.push(ev);
    if (stateKey !== undefined) room.state.set(`${type}\0${stateKey}`, ev);
    for (const w of waiters) w();
    waiters.clear();
    return ev;
  }
  const strip = ({ pos: _p, ...e }: ClientEvent & { pos: number }): ClientEvent => e;
  const membership = (room: Room, userId: string): string | undefined => room.state.get(`m.room.member\0${userId}`)?.content["membership"] as string | undefined;
  const roomOf = (id: string): Room => {
    const r = rooms.get(id);
    if (!r) throw err(404, "M_NOT_FOUND", "unknown room");
    return r;
  };
  const user = (req: IncomingMessage): string => {
    const h = req.headers.authorization;
    if (!h) throw err(401, "M_MISSING_TOKEN", "missing token");
    const u = tokens.get(h.replace(/^Bearer /, ""));
    if (!u) throw err(401, "M_UNKNOWN_TOKEN", "unknown token", { soft_logout: false });
    return u;
  };
  const newSession = (userId: string) => {
    const token = `syt_${randomBytes(8).toString("hex")}`;
    tokens.set(token, userId);
    return { user_id: userId, access_token: token, device_id: `DEV${++seq}` };
  };

  async function isCall(path: string, token: string, body?: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(isUrl + path, {
      method: body === undefined ? "GET" : "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) {
      const errcode = typeof json["errcode"] === "string" ? json["errcode"] : "M_UNKNOWN";
      // DECISIONS: relay the IS's errcode with 400 (403 for terms / forbidden), never 401.
      throw err(errcode === "M_TERMS_NOT_SIGNED" || errcode === "M_FORBIDDEN" ? 403 : 400, errcode, String(json["error"] ?? ""), json["mxid"] ? { mxid: json["mxid"] } : {});
    }
    return json;
  }

  async function invite3pid(room: Room, sender: string, b: Record<string, unknown>): Promise<void> {
    const { id_server, id_access_token, medium, address } = b;
    if (typeof id_access_token !== "string") throw err(400, "M_MISSING_PARAM", "id_access_token");
    if (id_server !== isName && id_server !== `localhost:${isPort}`) throw err(400, "M_SERVER_NOT_TRUSTED", "untrusted id_server");
    const addr = normalizeEmail(String(address));
    const details = await isCall("/_matrix/identity/v2/hash_details", id_access_token);
    const hash = lookupHash(addr, String(medium), String(details["lookup_pepper"]));
    const found = await isCall("/_matrix/identity/v2/lookup", id_access_token, { addresses: [hash], algorithm: "sha256", pepper: details["lookup_pepper"] });
    const mxid = (found["mappings"] as Record<string, string>)[hash];
    if (mxid) return inviteUser(room, sender, mxid);
    const key = `${room.id}|${sender}|${addr}`;
    const existing = pending.get(key);
    if (existing && room.state.get(`m.room.third_party_invite\0${existing}`)?.content["display_name"]) return;
    const stored = await isCall("/_matrix/identity/v2/store-invite", id_access_token, { medium, address: addr, room_id: room.id, sender });
    pending.set(key, String(stored["token"]));
    send(room, sender, "m.room.third_party_invite", String(stored["token"]), {
      display_name: stored["display_name"],
      public_key: stored["public_key"],
      key_validity_url: (stored["public_keys"] as { key_validity_url: string }[])[0]!.key_validity_url,
      public_keys: stored["public_keys"],
    });
  }

  function inviteUser(room: Room, sender: string, target: string): void {
    const m = membership(room, target);
    if (m === "invite") return;
    if (m === "join" || m === "ban") throw err(403, "M_FORBIDDEN", `${target} is already in the room`);
    send(room, sender, "m.room.member", target, { membership: "invite" });
  }

  const C = "/_matrix/client/v3";
  const hsRoutes: [string, RegExp, Handler][] = [
    ["GET", /^\/_matrix\/client\/versions$/, async () => ({ versions: ["v1.11"] })],
    [
      "POST",
      new RegExp(`^${C}/register$`),
      async (req) => {
        const b = await readJson(req);
        const auth = b["auth"] as { type?: string; session?: string } | undefined;
        if (!auth?.session) throw new Reply(401, { flows: [{ stages: ["m.login.dummy"] }], session: "uia1", params: {} });
        const userId = `@${String(b["username"])}:${hsName}`;
        if (users.has(userId)) throw err(400, "M_USER_IN_USE", "taken");
        users.set(userId, String(b["password"]));
        return newSession(userId);
      },
    ],
    [
      "POST",
      new RegExp(`^${C}/login$`),
      async (req) => {
        const b = await readJson(req);
        const id = (b["identifier"] as { user?: string } | undefined)?.user ?? "";
        const userId = id.startsWith("@") ? id : `@${id}:${hsName}`;
        if (users.get(userId) !== b["password"]) throw err(403, "M_FORBIDDEN", "bad login");
        return newSession(userId);
      },
    ],
    ["GET", new RegExp(`^${C}/account/whoami$`), async (req) => ({ user_id: user(req) })],
    [
      "POST",
      new RegExp(`^${C}/logout$`),
      async (req) => {
        user(req);
        tokens.delete(req.headers.authorization!.replace(/^Bearer /, ""));
        return {};
      },
    ],
    [
      "POST",
      new RegExp(`^${C}/user/([^/]+)/openid/request_token$`),
      async (req, _u, m) => {
        const me = user(req);
        if (decodeURIComponent(m[1]!) !== me) throw err(403, "M_FORBIDDEN", "not you");
        const t = `oid_${randomBytes(8).toString("hex")}`;
        openIds.set(t, me);
        return { access_token: t, token_type: "Bearer", matrix_server_name: hsName, expires_in: 3600 };
      },
    ],
    [
      "GET",
      new RegExp(`^${C}/user/([^/]+)/account_data/([^/]+)$`),
      async (req, _u, m) => {
        const me = user(req);
        if (decodeURIComponent(m[1]!) !== me) throw err(403, "M_FORBIDDEN", "not you");
        const content = accountData.get(`${me}\0${decodeURIComponent(m[2]!)}`);
        if (!content) throw err(404, "M_NOT_FOUND", "no account data");
        return content;
      },
    ],
    [
      "PUT",
      new RegExp(`^${C}/user/([^/]+)/account_data/([^/]+)$`),
      async (req, _u, m) => {
        const me = user(req);
        if (decodeURIComponent(m[1]!) !== me) throw err(403, "M_FORBIDDEN", "not you");
        accountData.set(`${me}\0${decodeURIComponent(m[2]!)}`, await readJson(req));
        return {};
      },
    ],
    [
      "GET",
      new RegExp(`^${C}/profile/([^/]+)$`),
      async (_req, _u, m) => {
        const id = decodeURIComponent(m[1]!);
        if (!users.has(id)) throw err(404, "M_NOT_FOUND", "no such user");
        return { displayname: id.slice(1).split(":")[0] };
      },
    ],
    [
      "POST",
      new RegExp(`^${C}/createRoom$`),
      async (req) => {
        const me = user(req);
        const b = await readJson(req);
        const room: Room = { id: `!r${++seq}:${hsName}`, state: new Map(), timeline: [] };
        rooms.set(room.id, room);
        send(room, me, "m.room.create", "", { creator: me, room_version: "10" });
        send(room, me, "m.room.member", me, { membership: "join" });
        send(room, me, "m.room.join_rules", "", { join_rule: b["preset"] === "public_chat" ? "public" : "invite" });
        if (typeof b["name"] === "string") send(room, me, "m.room.name", "", { name: b["name"] });
        for (const t of (b["invite"] as string[] | undefined) ?? []) inviteUser(room, me, t);
        for (const t of (b["invite_3pid"] as Record<string, unknown>[] | undefined) ?? []) await invite3pid(room, me, t);
        return { room_id: room.id };
      },
    ],
    [
      "GET",
      new RegExp(`^${C}/joined_rooms$`),
      async (req) => {
        const me = user(req);
        return { joined_rooms: [...rooms.values()].filter((r) => membership(r, me) === "join").map((r) => r.id) };
      },
    ],
    [
      "GET",
      new RegExp(`^${C}/rooms/([^/]+)/state$`),
      async (req, _u, m) => {
        const me = user(req);
        const room = roomOf(decodeURIComponent(m[1]!));
        if (membership(room, me) !== "join") throw err(403, "M_FORBIDDEN", "not in room");
        return [...room.state.values()].map(strip);
      },
    ],
    [
      "GET",
      new RegExp(`^${C}/rooms/([^/]+)/state/([^/]+)(?:/([^/]*))?$`),
      async (req, _u, m) => {
        user(req);
        const ev = roomOf(decodeURIComponent(m[1]!)).state.get(`${decodeURIComponent(m[2]!)}\0${decodeURIComponent(m[3] ?? "")}`);
        if (!ev) throw err(404, "M_NOT_FOUND", "no such state");
        return ev.content;
      },
    ],
    [
      "PUT",
      new RegExp(`^${C}/rooms/([^/]+)/state/([^/]+)(?:/([^/]*))?$`),
      async (req, _u, m) => {
        const me = user(req);
        const room = roomOf(decodeURIComponent(m[1]!));
        if (membership(room, me) !== "join") throw err(403, "M_FORBIDDEN", "not in room");
        return { event_id: send(room, me, decodeURIComponent(m[2]!), decodeURIComponent(m[3] ?? ""), await readJson(req)).event_id };
      },
    ],
    [
      "PUT",
      new RegExp(`^${C}/rooms/([^/]+)/send/([^/]+)/([^/]+)$`),
      async (req, _u, m) => {
        const me = user(req);
        const room = roomOf(decodeURIComponent(m[1]!));
        if (membership(room, me) !== "join") throw err(403, "M_FORBIDDEN", "not in room");
        return { event_id: send(room, me, decodeURIComponent(m[2]!), undefined, await readJson(req)).event_id };
      },
    ],
    [
      "POST",
      new RegExp(`^${C}/rooms/([^/]+)/invite$`),
      async (req, _u, m) => {
        const me = user(req);
        const room = roomOf(decodeURIComponent(m[1]!));
        const b = await readJson(req);
        if (membership(room, me) !== "join") throw err(403, "M_FORBIDDEN", "not in room");
        if (b["medium"] !== undefined && b["address"] !== undefined) await invite3pid(room, me, b);
        else inviteUser(room, me, String(b["user_id"]));
        return {};
      },
    ],
    [
      "POST",
      new RegExp(`^${C}/(?:join/([^/]+)|rooms/([^/]+)/join)$`),
      async (req, _u, m) => {
        const me = user(req);
        const room = roomOf(decodeURIComponent(m[1] ?? m[2]!));
        const b = await readJson(req);
        const tps = b["third_party_signed"] as { sender: string; mxid: string; token: string; signatures: Record<string, Record<string, string>> } | undefined;
        const current = membership(room, me);
        if (current === "join") return { room_id: room.id };
        if (tps) {
          const tpi = room.state.get(`m.room.third_party_invite\0${tps.token}`);
          if (!tpi || Object.keys(tpi.content).length === 0 || tps.mxid !== me) throw err(403, "M_FORBIDDEN", "no such third-party invite");
          const keys = [tpi.content["public_key"], ...((tpi.content["public_keys"] as { public_key: string }[] | undefined) ?? []).map((k) => k.public_key)];
          let ok = false;
          for (const [entity, sigs] of Object.entries(tps.signatures))
            for (const keyId of Object.keys(sigs)) for (const k of keys) if (typeof k === "string" && (await verifyJsonSignature(tps, entity, keyId, k, nodeCryptoProvider))) ok = true;
          if (!ok) throw err(403, "M_FORBIDDEN", "bad signature");
          send(room, tpi.sender, "m.room.member", me, { membership: "invite", third_party_invite: { display_name: tpi.content["display_name"], signed: tps } });
        } else if (current !== "invite" && room.state.get("m.room.join_rules\0")?.content["join_rule"] !== "public") {
          throw err(403, "M_FORBIDDEN", "not invited");
        }
        send(room, me, "m.room.member", me, { membership: "join" });
        return { room_id: room.id };
      },
    ],
    [
      "GET",
      new RegExp(`^${C}/rooms/([^/]+)/messages$`),
      async (req, url, m) => {
        const me = user(req);
        const room = roomOf(decodeURIComponent(m[1]!));
        if (membership(room, me) !== "join") throw err(403, "M_FORBIDDEN", "not in room");
        const limit = Math.min(Number(url.searchParams.get("limit") ?? "10"), 100);
        const backwards = url.searchParams.get("dir") === "b";
        const from = Number(url.searchParams.get("from") ?? (backwards ? pos + 1 : 0));
        const types = (JSON.parse(url.searchParams.get("filter") ?? "{}") as { types?: string[] }).types;
        const pool = room.timeline.filter((e) => (backwards ? e.pos < from : e.pos > from) && (!types || types.includes(e.type)));
        const chunk = backwards ? pool.reverse().slice(0, limit) : pool.slice(0, limit);
        const last = chunk.at(-1);
        return { start: String(from), chunk: chunk.map(strip), ...(last && chunk.length === limit ? { end: String(last.pos) } : {}) };
      },
    ],
    [
      "POST",
      new RegExp(`^${C}/rooms/([^/]+)/leave$`),
      async (req, _u, m) => {
        const me = user(req);
        send(roomOf(decodeURIComponent(m[1]!)), me, "m.room.member", me, { membership: "leave" });
        return {};
      },
    ],
    [
      "GET",
      new RegExp(`^${C}/sync$`),
      async (req, url) => {
        const me = user(req);
        const since = Number(url.searchParams.get("since") ?? "0");
        const timeout = Math.min(Number(url.searchParams.get("timeout") ?? "0"), 10_000);
        const build = () => {
          const join: Record<string, unknown> = {};
          const invite: Record<string, unknown> = {};
          for (const room of rooms.values()) {
            const mine = room.state.get(`m.room.member\0${me}`);
            if (!mine) continue;
            const fresh = room.timeline.filter((e) => e.pos > since);
            if (mine.content["membership"] === "join" && fresh.length) join[room.id] = { timeline: { events: fresh.map(strip) } };
            if (mine.content["membership"] === "invite" && mine.pos > since)
              invite[room.id] = { invite_state: { events: [...room.state.values()].filter((e) => e.type !== "m.room.member" || e.state_key === me).map(({ type, state_key, sender, content }) => ({ type, state_key, sender, content })) } };
          }
          return Object.keys(join).length || Object.keys(invite).length ? { next_batch: String(pos), rooms: { join, invite } } : undefined;
        };
        const now = build();
        if (now || timeout === 0) return now ?? { next_batch: String(pos) };
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, timeout);
          waiters.add(() => {
            clearTimeout(t);
            resolve();
          });
          req.on("close", () => resolve());
        });
        return build() ?? { next_batch: String(pos) };
      },
    ],
  ];

  // ── identity server ──
  const I = "/_matrix/identity/v2";
  const isUser = (req: IncomingMessage, url: URL, terms = true): string => {
    const t = req.headers.authorization?.replace(/^Bearer /, "") ?? url.searchParams.get("access_token") ?? "";
    const u = isTokens.get(t);
    if (!u) throw err(401, "M_UNAUTHORIZED", "unknown token");
    if (terms && opts.termsRequired && !acceptedTerms.has(t)) throw err(403, "M_TERMS_NOT_SIGNED", "accept the terms first");
    return u;
  };
  const policyUrl = `${isUrl}/terms/privacy-1.0.html`;
  const isRoutes: [string, RegExp, Handler][] = [
    ["GET", new RegExp(`^${I}$`), async () => ({})],
    [
      "POST",
      new RegExp(`^${I}/account/register$`),
      async (req) => {
        const b = await readJson(req);
        const u = openIds.get(String(b["access_token"]));
        if (!u || b["matrix_server_name"] !== hsName) throw err(401, "M_UNAUTHORIZED", "bad OpenID token");
        const t = `ist_${randomBytes(8).toString("hex")}`;
        isTokens.set(t, u);
        return { token: t, access_token: t };
      },
    ],
    ["GET", new RegExp(`^${I}/account$`), async (req, url) => ({ user_id: isUser(req, url, false) })],
    [
      "POST",
      new RegExp(`^${I}/account/logout$`),
      async (req, url) => {
        isUser(req, url, false);
        isTokens.delete(req.headers.authorization!.replace(/^Bearer /, ""));
        return {};
      },
    ],
    ["GET", new RegExp(`^${I}/terms$`), async () => ({ policies: { privacy_policy: { version: "1.0", en: { name: "Privacy Policy", url: policyUrl } } } })],
    [
      "POST",
      new RegExp(`^${I}/terms$`),
      async (req, url) => {
        isUser(req, url, false);
        const b = await readJson(req);
        if ((b["user_accepts"] as string[]).includes(policyUrl)) acceptedTerms.add(req.headers.authorization!.replace(/^Bearer /, ""));
        return {};
      },
    ],
    [
      "GET",
      new RegExp(`^${I}/hash_details$`),
      async (req, url) => {
        isUser(req, url);
        return { lookup_pepper: servers.pepper, algorithms: opts.algorithms ?? ["none", "sha256"] };
      },
    ],
    [
      "POST",
      new RegExp(`^${I}/lookup$`),
      async (req, url) => {
        isUser(req, url);
        const b = await readJson(req);
        if (b["algorithm"] === "sha256" && b["pepper"] !== servers.pepper) throw err(400, "M_INVALID_PEPPER", "wrong pepper", { algorithm: "sha256", lookup_pepper: servers.pepper });
        const mappings: Record<string, string> = {};
        for (const [address, mxid] of bindings) {
          const key = b["algorithm"] === "sha256" ? lookupHash(address, "email", servers.pepper) : `${address} email`;
          if ((b["addresses"] as string[]).includes(key)) mappings[key] = mxid;
        }
        return { mappings };
      },
    ],
    [
      "POST",
      new RegExp(`^${I}/store-invite$`),
      async (req, url) => {
        isUser(req, url);
        const b = await readJson(req);
        const address = normalizeEmail(String(b["address"]));
        const bound = bindings.get(address);
        if (bound) throw err(400, "M_THREEPID_IN_USE", "already bound", { mxid: bound });
        const token = randomBytes(12).toString("hex");
        const seed = new Uint8Array(randomBytes(32));
        const publicKey = encodeBase64(await nodeCryptoProvider.ed25519PublicKey(seed));
        invites.set(token, { address, roomId: String(b["room_id"]), sender: String(b["sender"]), seed, publicKey });
        seeds.set(token, encodeBase64(seed));
        const signUrl = `${isUrl}${I}/sign-ed25519?token=${token}&private_key=${encodeURIComponent(encodeBase64(seed))}`;
        mails.push({ to: address, roomId: String(b["room_id"]), token, signUrl });
        const kv = `${isUrl}${I}/pubkey/ephemeral/isvalid`;
        return { token, public_key: publicKey, public_keys: [{ public_key: publicKey, key_validity_url: kv }], display_name: `${address.slice(0, 3)}...@${address.split("@")[1]?.slice(0, 3) ?? ""}...` };
      },
    ],
    [
      "POST",
      new RegExp(`^${I}/sign-ed25519$`),
      async (req, url) => {
        const b = await readJson(req);
        const get = (k: string): string | undefined => url.searchParams.get(k) ?? (typeof b[k] === "string" ? (b[k] as string) : undefined);
        const token = get("token");
        const inv = token ? invites.get(token) : undefined;
        if (!token || !inv || seeds.get(token) !== get("private_key") || !get("mxid")) throw err(404, "M_UNRECOGNIZED", "unknown invite");
        return signJson({ mxid: get("mxid")!, sender: inv.sender, token }, isName, "ed25519:0", inv.seed, nodeCryptoProvider);
      },
    ],
    ["GET", new RegExp(`^${I}/pubkey/ephemeral/isvalid$`), async (_r, url) => ({ valid: [...invites.values()].some((i) => i.publicKey === url.searchParams.get("public_key")) })],
  ];

  const serve = (routes: [string, RegExp, Handler][]) => async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const key = `${req.method} ${url.pathname}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const file = req.method === "GET" ? servers.files.get(url.pathname) : undefined;
    if (file && routes === hsRoutes) {
      res.writeHead(200, { "content-type": file.contentType }).end(file.body);
      return;
    }
    if (req.method === "OPTIONS") {
      res.writeHead(204, CORS).end();
      return;
    }
    const fault = faults.find((f) => f.method === req.method && url.pathname.endsWith(f.pathEndsWith) && (f.times ?? 1) > 0);
    if (fault) {
      fault.times = (fault.times ?? 1) - 1;
      if (fault.action === "destroy") {
        for await (const _ of req) void _;
        req.socket.destroy();
        return;
      }
      res.writeHead(fault.action.status, { "content-type": "application/json", ...CORS, ...fault.action.headers }).end(JSON.stringify(fault.action.body));
      return;
    }
    let status = 200;
    let body: unknown;
    try {
      const route = routes.find(([method, re]) => method === req.method && re.test(url.pathname));
      if (!route) throw err(routes.some(([, re]) => re.test(url.pathname)) ? 405 : 404, "M_UNRECOGNIZED", "unrecognized request");
      body = await route[2](req, url, url.pathname.match(route[1])!);
    } catch (e) {
      if (e instanceof Reply) {
        status = e.status;
        body = e.body;
      } else {
        status = 500;
        body = { errcode: "M_UNKNOWN", error: String(e) };
      }
    }
    if (!res.destroyed) res.writeHead(status, { "content-type": "application/json", ...CORS }).end(JSON.stringify(body));
  };
  hsServer.on("request", (req: IncomingMessage, res: ServerResponse) => void serve(hsRoutes)(req, res));
  isServer.on("request", (req: IncomingMessage, res: ServerResponse) => void serve(isRoutes)(req, res));
  return servers;
}
