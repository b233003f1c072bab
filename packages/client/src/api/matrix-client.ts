/**
 * Typed calls for the Client-Server API, built from the endpoint descriptors in
 * `@beckon/protocol`. Every method takes {@link CallOptions} last (signal, timeouts, retries,
 * queue) and rejects with the SDK's typed errors.
 *
 * @example
 * const client = new MatrixClient({ baseUrl: "http://127.0.0.1:8008" });
 * await client.login("alice", "secret");
 * const { room_id } = await client.createRoom({ name: "Book club" });
 * await client.inviteBy3PID(room_id, { idServer: "127.0.0.1:8090", idAccessToken, medium: "email", address: "bob@example.org" });
 */
import {
  EventType,
  ban,
  bindThreepid,
  capabilities,
  clientVersions,
  createRoom,
  deactivate,
  deleteRoomAlias,
  deleteThreepid,
  forget,
  getAccountData,
  getEvent,
  getRoomAccountData,
  getRoomAliases,
  getAvatarUrl,
  getDisplayName,
  getJoinedMembers,
  getJoinedRooms,
  getMembers,
  getMessages,
  getProfile,
  getRoomAlias,
  getRoomState,
  getStateEvent,
  getThreepids,
  invite,
  loginFlows,
  wellKnownClient,
  joinRoomIdOrAlias,
  kick,
  leave,
  login,
  logout,
  logoutAll,
  register,
  requestOpenIdToken,
  sendEvent,
  setAccountData,
  setAvatarUrl,
  setDisplayName,
  setRoomAccountData,
  setRoomAlias,
  setStateEvent,
  sync,
  unban,
  unbindThreepid,
  whoami,
  type BindThreepidRequest,
  type ClientEvent,
  type CreateRoomRequest,
  type EmptyObject,
  type EventContent,
  type Invite3pid,
  type LoginResponse,
  type MembersQuery,
  type MessagesQuery,
  type OpenIdToken,
  type RegisterResponse,
  type SyncQuery,
  type SyncResponse,
  type ThirdPartySigned,
  type UnbindThreepidRequest,
} from "@beckon/protocol";
import { ConnectionError, HttpError, MatrixCallError, errorKind } from "../http/errors.js";
import type { CallOptions, RetryPolicy } from "../http/transport.js";
import { ApiClient, type ApiClientOptions } from "./base.js";

export interface MatrixClientOptions extends ApiClientOptions {
  readonly userId?: string;
  readonly deviceId?: string;
}

/** The four fields of a 3PID invite, in the SDK's camelCase. */
export interface ThirdPartyInviteTarget {
  /** The identity server as the homeserver should reach it: `host[:port]` (a scheme is stripped). */
  readonly idServer: string;
  readonly idAccessToken: string;
  readonly medium: "email" | "msisdn" | (string & {});
  readonly address: string;
}

/** A pending third-party invite of a room (from its `m.room.third_party_invite` state). */
export interface PendingThirdPartyInvite {
  /** The state key: the identity server's invite token. */
  readonly token: string;
  /** The redacted address the identity server chose (`bob...@exa...`). */
  readonly displayName: string;
  readonly sender: string;
  /** When the invite was made (ms since the epoch). */
  readonly invitedAt: number;
  readonly eventId: string;
}

/**
 * The retry policy of requests that must never be repeated once they may have reached the
 * server (the 3PID invite: a repeat could mean a second mail). Retries only a 429 (the server
 * did nothing) and a connection that failed before sending; a caller's policy may veto those.
 */
export function notIfMaybeReceived(caller?: RetryPolicy): RetryPolicy {
  return (ctx) => {
    const safe = ctx.error instanceof ConnectionError ? ctx.error.kind === "network" && !ctx.error.maybeSent : errorKind(ctx.error) === "too-many-requests";
    if (!safe) return false;
    return caller?.(ctx) ?? true;
  };
}

/** `host[:port]` of an identity server given as a URL or a name (what the homeserver expects in `id_server`). */
export function idServerHost(idServer: string): string {
  return idServer.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(/\/+$/, "");
}

let txnCounter = 0;

export class MatrixClient extends ApiClient {
  userId: string | undefined;
  deviceId: string | undefined;

  constructor(opts: MatrixClientOptions) {
    super(opts);
    this.userId = opts.userId;
    this.deviceId = opts.deviceId;
  }

  /** A fresh transaction ID for `send` (unique per client instance and process). */
  newTxnId(): string {
    return `bk${this.transport.clock.now().toString(36)}.${(++txnCounter).toString(36)}`;
  }

  #me(): string {
    if (!this.userId) throw new TypeError("the client has no user ID: log in first or pass userId");
    return this.userId;
  }

  #session(r: { user_id: string; access_token?: string | undefined; device_id?: string | undefined }): void {
    this.userId = r.user_id;
    if (r.access_token) this.accessToken = r.access_token;
    if (r.device_id) this.deviceId = r.device_id;
  }

  // ── discovery ──────────────────────────────────────────────────────────────

  versions(opts?: CallOptions) {
    return this.call(clientVersions, {}, opts);
  }

  capabilities(opts?: CallOptions) {
    return this.call(capabilities, {}, opts);
  }

  /** `GET /.well-known/matrix/client` on this base URL (use a client on `https://<server name>` to discover). */
  wellKnown(opts?: CallOptions) {
    return this.call(wellKnownClient, {}, opts);
  }

  /** The login types the server offers. */
  loginFlows(opts?: CallOptions) {
    return this.call(loginFlows, {}, opts);
  }

  // ── account ────────────────────────────────────────────────────────────────

  /**
   * Registers a user with a password, completing the `m.login.dummy` user-interactive-auth
   * stage, and keeps the session (token, user ID, device ID) on this client.
   */
  async register(req: { username: string; password: string; deviceId?: string; initialDeviceDisplayName?: string }, opts?: CallOptions): Promise<RegisterResponse> {
    const body = {
      username: req.username,
      password: req.password,
      ...(req.deviceId ? { device_id: req.deviceId } : {}),
      ...(req.initialDeviceDisplayName ? { initial_device_display_name: req.initialDeviceDisplayName } : {}),
    };
    let session: string | undefined;
    try {
      const r = await this.call(register, { body: { ...body, auth: { type: "m.login.dummy" } } }, opts);
      this.#session(r);
      return r;
    } catch (e) {
      const flows = e instanceof HttpError ? e.json : e instanceof MatrixCallError ? e.extra : undefined;
      const s = flows && typeof flows === "object" ? (flows as { session?: unknown }).session : undefined;
      if (errorKind(e) !== "unauthorised" || typeof s !== "string") throw e;
      session = s;
    }
    const r = await this.call(register, { body: { ...body, auth: { type: "m.login.dummy", session } } }, opts);
    this.#session(r);
    return r;
  }

  /** Password login; keeps the session on this client. */
  async login(user: string, password: string, opts?: CallOptions & { deviceId?: string }): Promise<LoginResponse> {
    const r = await this.call(
      login,
      { body: { type: "m.login.password", identifier: { type: "m.id.user", user }, password, ...(opts?.deviceId ? { device_id: opts.deviceId } : {}) } },
      opts,
    );
    this.#session(r);
    return r;
  }

  /** Logs out this session (or all sessions) and forgets the token. */
  async logout(opts?: CallOptions & { all?: boolean }): Promise<void> {
    await this.call(opts?.all ? logoutAll : logout, { body: {} }, opts);
    this.accessToken = undefined;
  }

  async whoami(opts?: CallOptions) {
    const r = await this.call(whoami, {}, opts);
    this.userId ??= r.user_id;
    return r;
  }

  deactivate(body: { auth?: Record<string, unknown>; erase?: boolean; id_server?: string } = {}, opts?: CallOptions) {
    return this.call(deactivate, { body }, opts);
  }

  /** `POST user/{me}/openid/request_token`: a token an identity server can verify (`account/register`). */
  requestOpenIdToken(opts?: CallOptions): Promise<OpenIdToken> {
    return this.call(requestOpenIdToken, { params: { userId: this.#me() }, body: {} }, { idempotent: true, ...opts });
  }

  // ── profile ────────────────────────────────────────────────────────────────

  getProfile(userId: string, opts?: CallOptions) {
    return this.call(getProfile, { params: { userId } }, opts);
  }

  getDisplayName(userId: string, opts?: CallOptions) {
    return this.call(getDisplayName, { params: { userId } }, opts);
  }

  setDisplayName(displayname: string, opts?: CallOptions) {
    return this.call(setDisplayName, { params: { userId: this.#me() }, body: { displayname } }, opts);
  }

  getAvatarUrl(userId: string, opts?: CallOptions) {
    return this.call(getAvatarUrl, { params: { userId } }, opts);
  }

  setAvatarUrl(avatar_url: string, opts?: CallOptions) {
    return this.call(setAvatarUrl, { params: { userId: this.#me() }, body: { avatar_url } }, opts);
  }

  // ── rooms ──────────────────────────────────────────────────────────────────

  /**
   * Creates a room. Entries of `invite_3pid` go to the identity server before the room is
   * committed (Beckon's homeserver): like {@link inviteBy3PID}, this POST is never resent once
   * it may have reached the server.
   */
  createRoom(req: CreateRoomRequest = {}, opts?: CallOptions) {
    const once = req.invite_3pid?.length ? { retryOn: notIfMaybeReceived(opts?.retryOn) } : {};
    return this.call(createRoom, { body: req }, { ...opts, ...once });
  }

  getState(roomId: string, opts?: CallOptions): Promise<ClientEvent[]> {
    return this.call(getRoomState, { params: { roomId } }, opts);
  }

  getStateEvent(roomId: string, eventType: string, stateKey = "", opts?: CallOptions): Promise<EventContent> {
    return this.call(getStateEvent, { params: { roomId, eventType, stateKey } }, opts);
  }

  setState(roomId: string, eventType: string, stateKey: string, content: EventContent, opts?: CallOptions) {
    return this.call(setStateEvent, { params: { roomId, eventType, stateKey }, body: content }, opts);
  }

  /** Sends a message event. Idempotent by its transaction ID, so retried safely (pass `txnId` to control it). */
  sendEvent(roomId: string, eventType: string, content: EventContent, opts?: CallOptions & { txnId?: string }) {
    const txnId = opts?.txnId ?? this.newTxnId();
    return this.call(sendEvent, { params: { roomId, eventType, txnId }, body: content }, opts);
  }

  sendMessage(roomId: string, body: string, opts?: CallOptions & { txnId?: string }) {
    return this.sendEvent(roomId, EventType.Message, { msgtype: "m.text", body }, opts);
  }

  messages(roomId: string, query: MessagesQuery = {}, opts?: CallOptions) {
    return this.call(getMessages, { params: { roomId }, query }, opts);
  }

  members(roomId: string, query: MembersQuery = {}, opts?: CallOptions) {
    return this.call(getMembers, { params: { roomId }, query }, opts);
  }

  joinedMembers(roomId: string, opts?: CallOptions) {
    return this.call(getJoinedMembers, { params: { roomId } }, opts);
  }

  joinedRooms(opts?: CallOptions) {
    return this.call(getJoinedRooms, {}, opts);
  }

  resolveAlias(roomAlias: string, opts?: CallOptions) {
    return this.call(getRoomAlias, { params: { roomAlias } }, opts);
  }

  setAlias(roomAlias: string, roomId: string, opts?: CallOptions) {
    return this.call(setRoomAlias, { params: { roomAlias }, body: { room_id: roomId as never } }, opts);
  }

  deleteAlias(roomAlias: string, opts?: CallOptions) {
    return this.call(deleteRoomAlias, { params: { roomAlias } }, opts);
  }

  /** The local aliases of a room. */
  roomAliases(roomId: string, opts?: CallOptions) {
    return this.call(getRoomAliases, { params: { roomId } }, opts);
  }

  /** One event by ID. */
  getEvent(roomId: string, eventId: string, opts?: CallOptions): Promise<ClientEvent> {
    return this.call(getEvent, { params: { roomId, eventId } }, opts);
  }

  // ── account data ───────────────────────────────────────────────────────────

  /** Global account data of this user (e.g. `m.identity_server`, `m.accepted_terms`); 404 `M_NOT_FOUND` when unset. */
  getAccountData(type: string, opts?: CallOptions): Promise<Record<string, unknown>> {
    return this.call(getAccountData, { params: { userId: this.#me(), type } }, opts);
  }

  setAccountData(type: string, content: Record<string, unknown>, opts?: CallOptions) {
    return this.call(setAccountData, { params: { userId: this.#me(), type }, body: content }, opts);
  }

  getRoomAccountData(roomId: string, type: string, opts?: CallOptions): Promise<Record<string, unknown>> {
    return this.call(getRoomAccountData, { params: { userId: this.#me(), roomId, type } }, opts);
  }

  setRoomAccountData(roomId: string, type: string, content: Record<string, unknown>, opts?: CallOptions) {
    return this.call(setRoomAccountData, { params: { userId: this.#me(), roomId, type }, body: content }, opts);
  }

  // ── membership ─────────────────────────────────────────────────────────────

  /** Invites a user by Matrix ID. Inviting someone already invited is `200 {}`. */
  invite(roomId: string, userId: string, opts?: CallOptions & { reason?: string }): Promise<EmptyObject> {
    return this.call(invite, { params: { roomId }, body: { user_id: userId as never, ...(opts?.reason ? { reason: opts.reason } : {}) } }, opts);
  }

  /**
   * Invites by third-party identifier (`POST rooms/{roomId}/invite` with `id_server`,
   * `id_access_token`, `medium`, `address`). The homeserver looks the address up and either
   * invites the bound user or stores an invite at the identity server, which mails the address.
   *
   * **Exactly once:** this POST carries no transaction ID, so it is never resent once it may
   * have reached the server (a timeout, a reset connection or a 5xx are returned to you, not
   * retried). Only a 429 (the server did nothing) and a connection refused before sending are
   * retried. A caller's `retryOn` can only narrow that.
   */
  inviteBy3PID(roomId: string, target: ThirdPartyInviteTarget, opts?: CallOptions): Promise<EmptyObject> {
    const body: Invite3pid = { id_server: idServerHost(target.idServer), id_access_token: target.idAccessToken, medium: target.medium, address: target.address };
    return this.call(invite, { params: { roomId }, body }, { ...opts, idempotent: false, retryOn: notIfMaybeReceived(opts?.retryOn) });
  }

  /**
   * Joins a room by ID or alias. With `thirdPartySigned` (from an identity server's
   * `sign-ed25519`), joins on the strength of a third-party invite.
   */
  join(roomIdOrAlias: string, opts?: CallOptions & { via?: string[]; reason?: string; thirdPartySigned?: ThirdPartySigned }) {
    const body = {
      ...(opts?.reason ? { reason: opts.reason } : {}),
      ...(opts?.thirdPartySigned ? { third_party_signed: opts.thirdPartySigned } : {}),
    };
    const query = opts?.via?.length ? { via: opts.via, server_name: opts.via } : undefined;
    return this.call(joinRoomIdOrAlias, { params: { roomIdOrAlias }, body, ...(query ? { query } : {}) }, { idempotent: true, ...opts });
  }

  leave(roomId: string, opts?: CallOptions & { reason?: string }) {
    return this.call(leave, { params: { roomId }, body: opts?.reason ? { reason: opts.reason } : {} }, opts);
  }

  forget(roomId: string, opts?: CallOptions) {
    return this.call(forget, { params: { roomId }, body: {} }, { idempotent: true, ...opts });
  }

  kick(roomId: string, userId: string, opts?: CallOptions & { reason?: string }) {
    return this.call(kick, { params: { roomId }, body: { user_id: userId as never, ...(opts?.reason ? { reason: opts.reason } : {}) } }, opts);
  }

  ban(roomId: string, userId: string, opts?: CallOptions & { reason?: string }) {
    return this.call(ban, { params: { roomId }, body: { user_id: userId as never, ...(opts?.reason ? { reason: opts.reason } : {}) } }, opts);
  }

  unban(roomId: string, userId: string, opts?: CallOptions & { reason?: string }) {
    return this.call(unban, { params: { roomId }, body: { user_id: userId as never, ...(opts?.reason ? { reason: opts.reason } : {}) } }, opts);
  }

  // ── third-party invites of a room ──────────────────────────────────────────

  /**
   * The room's pending third-party invites: `m.room.third_party_invite` state with content that
   * no `m.room.member` event has consumed (matched by `third_party_invite.signed.token`). A join
   * replaces the invite in the current state, so the member events' `unsigned.prev_content` and
   * the room's history (`/messages`, newest first, up to `historyLimit` events, default 1000) are
   * searched too.
   */
  async listPendingThirdPartyInvites(roomId: string, opts?: CallOptions & { historyLimit?: number }): Promise<PendingThirdPartyInvite[]> {
    const state = await this.getState(roomId, opts);
    const invites = state.filter((e) => e.type === EventType.ThirdPartyInvite && typeof e.state_key === "string" && Object.keys(e.content).length > 0);
    if (invites.length === 0) return [];
    const used = new Set<string>();
    const note = (content: unknown): void => {
      const tpi = content && typeof content === "object" ? (content as { third_party_invite?: { signed?: { token?: unknown } } }).third_party_invite : undefined;
      if (typeof tpi?.signed?.token === "string") used.add(tpi.signed.token);
    };
    for (const e of state) {
      if (e.type !== EventType.Member) continue;
      note(e.content);
      note(e.unsigned?.["prev_content"]);
    }
    const open = () => invites.some((e) => !used.has(e.state_key as string));
    let scanned = 0;
    let from: string | undefined;
    const limit = opts?.historyLimit ?? 1000;
    const filter = JSON.stringify({ types: [EventType.Member] });
    while (open() && scanned < limit) {
      let page;
      try {
        page = await this.messages(roomId, { dir: "b", limit: Math.min(100, limit - scanned), filter, ...(from ? { from } : {}) }, opts);
      } catch (e) {
        if (errorKind(e) === "aborted" || errorKind(e) === "deadline") throw e;
        break; // history unavailable: the current state is all we know
      }
      for (const e of page.chunk) if (e.type === EventType.Member) note(e.content);
      scanned += page.chunk.length;
      if (!page.end || page.chunk.length === 0 || page.end === from) break;
      from = page.end;
    }
    return invites
      .filter((e) => !used.has(e.state_key as string))
      .map((e) => ({
        token: e.state_key as string,
        displayName: typeof e.content["display_name"] === "string" ? e.content["display_name"] : "",
        sender: e.sender,
        invitedAt: e.origin_server_ts,
        eventId: e.event_id,
      }));
  }

  /**
   * Revokes a third-party invite: sends `m.room.third_party_invite` with the same state key
   * (the token) and empty content. Afterwards neither the identity server's `onbind` nor a
   * join with `third_party_signed` for that token succeeds.
   */
  revokeThirdPartyInvite(roomId: string, token: string, opts?: CallOptions) {
    return this.setState(roomId, EventType.ThirdPartyInvite, token, {}, opts);
  }

  // ── sync ───────────────────────────────────────────────────────────────────

  /** One `GET /sync`. The per-attempt timeout defaults to the long-poll `timeout` plus 30 s. */
  syncOnce(query: SyncQuery = {}, opts?: CallOptions): Promise<SyncResponse> {
    const pollMs = typeof query.timeout === "number" ? query.timeout : 0;
    return this.call(sync, { query }, { timeoutMs: pollMs + 30_000, ...opts });
  }

  // ── 3PIDs at identity servers ──────────────────────────────────────────────

  getThreepids(opts?: CallOptions) {
    return this.call(getThreepids, {}, opts);
  }

  /** Binds a validated 3PID session to this account at the identity server (through the homeserver). */
  bindThreepid(req: { sid: string; clientSecret: string; idServer: string; idAccessToken: string }, opts?: CallOptions) {
    const body: BindThreepidRequest = { sid: req.sid, client_secret: req.clientSecret, id_server: idServerHost(req.idServer), id_access_token: req.idAccessToken };
    return this.call(bindThreepid, { body }, opts);
  }

  unbindThreepid(medium: "email" | "msisdn", address: string, opts?: CallOptions & { idServer?: string }) {
    const body: UnbindThreepidRequest = { medium, address, ...(opts?.idServer ? { id_server: idServerHost(opts.idServer) } : {}) };
    return this.call(unbindThreepid, { body }, { idempotent: true, ...opts });
  }

  deleteThreepid(medium: "email" | "msisdn", address: string, opts?: CallOptions & { idServer?: string }) {
    const body: UnbindThreepidRequest = { medium, address, ...(opts?.idServer ? { id_server: idServerHost(opts.idServer) } : {}) };
    return this.call(deleteThreepid, { body }, { idempotent: true, ...opts });
  }
}
