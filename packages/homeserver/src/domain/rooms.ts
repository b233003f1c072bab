/**
 * Rooms as the Client-Server API sees them: sending (idempotent per device and transaction
 * id), state, history, members, aliases. Room creation is in `create-room.ts`, membership
 * changes in `membership.ts`; all writes go through {@link RoomEvents}.
 */
import { MatrixError, isValidRoomAlias, stateKeyId } from "@beckon/protocol";
import type { Clock } from "@beckon/server-kit";
import type { EventRecord, MembershipRecord, RoomStore } from "../storage/index.js";
import type { Accounts } from "./accounts.js";
import { RoomEvents, type EventDraft } from "./room-events.js";
import { powerLevelsFromState } from "./power-levels.js";
import { asRoomVersion } from "./room-events.js";
import type { PDU } from "@beckon/protocol";

export interface RoomsDeps {
  rooms: RoomStore;
  events: RoomEvents;
  accounts: Accounts;
  serverName: string;
  clock: Clock;
}

/** An event in the Client-Server API's format. */
export interface ClientEventOut {
  type: string;
  content: Record<string, unknown>;
  event_id: string;
  sender: string;
  origin_server_ts: number;
  room_id?: string;
  state_key?: string;
  unsigned?: Record<string, unknown>;
}

/** Converts a stored event to the client format, as seen by `viewer` (for `transaction_id`). */
export function toClientEvent(
  e: EventRecord,
  now: number,
  opts: { withRoomId?: boolean; viewer?: { userId: string; deviceId: string } } = {},
): ClientEventOut {
  const out: ClientEventOut = {
    type: e.type,
    content: e.pdu.content,
    event_id: e.eventId,
    sender: e.sender,
    origin_server_ts: e.originServerTs,
  };
  if (opts.withRoomId !== false) out.room_id = e.roomId;
  if (e.stateKey !== undefined) out.state_key = e.stateKey;
  const unsigned: Record<string, unknown> = { ...(e.unsigned ?? {}), age: Math.max(0, now - e.originServerTs) };
  if (opts.viewer && e.txnId !== undefined && e.sender === opts.viewer.userId && e.txnDeviceId === opts.viewer.deviceId) {
    unsigned.transaction_id = e.txnId;
  }
  out.unsigned = unsigned;
  return out;
}

/** `s<n>`: the stream position after event n. */
export function streamToken(pos: number): string {
  return `s${pos}`;
}

export function parseStreamToken(t: string | undefined): number | undefined {
  if (t === undefined) return undefined;
  const m = /^[st](\d{1,15})$/.exec(t);
  if (!m) throw new MatrixError("M_INVALID_PARAM", "Invalid pagination token", 400);
  return Number(m[1]);
}

export class Rooms {
  constructor(readonly deps: RoomsDeps) {}

  get serverName(): string {
    return this.deps.serverName;
  }

  isLocal(id: string): boolean {
    const i = id.indexOf(":");
    return i > 0 && id.slice(i + 1) === this.deps.serverName;
  }

  async requireRoom(roomId: string): Promise<{ roomVersion: string; creator: string; latestEventId: string }> {
    const room = await this.deps.rooms.getRoom(roomId);
    if (!room) {
      if (!this.isLocal(roomId)) throw new MatrixError("M_FORBIDDEN", "This server does not host the room, and federation is not enabled", 403);
      throw new MatrixError("M_NOT_FOUND", "Unknown room", 404);
    }
    return room;
  }

  /** Throws 403 unless the user is joined (404 for an unknown room). */
  async requireJoined(roomId: string, userId: string): Promise<MembershipRecord> {
    await this.requireRoom(roomId);
    const m = await this.deps.rooms.getMembership(roomId, userId);
    if (m?.membership !== "join") throw new MatrixError("M_FORBIDDEN", `User ${userId} not in room ${roomId}`, 403);
    return m;
  }

  /**
   * The stream position up to which `userId` may see the room: the current one when joined,
   * the leave when they left or were kicked or banned; throws 403 when they never joined.
   */
  async visibleUpTo(roomId: string, userId: string): Promise<number> {
    await this.requireRoom(roomId);
    const m = await this.deps.rooms.getMembership(roomId, userId);
    if (m?.membership === "join") return this.deps.rooms.currentStreamPos();
    if (m && (m.membership === "leave" || m.membership === "ban")) {
      const ev = await this.deps.rooms.getEvent(m.eventId);
      const prev = ev?.unsigned?.prev_content as Record<string, unknown> | undefined;
      if (prev?.membership === "join") return m.streamOrdering;
    }
    throw new MatrixError("M_FORBIDDEN", `User ${userId} not in room ${roomId}`, 403);
  }

  /** `PUT rooms/{roomId}/send/{eventType}/{txnId}`. */
  async sendMessage(roomId: string, principal: { userId: string; deviceId: string }, type: string, txnId: string, content: Record<string, unknown>): Promise<string> {
    await this.requireRoom(roomId);
    const existing = await this.deps.rooms.getTxn(principal.userId, principal.deviceId, txnId);
    if (existing) return existing;
    const r = await this.deps.events.send(roomId, { type, sender: principal.userId, content }, { txn: { userId: principal.userId, deviceId: principal.deviceId, txnId } });
    return r.eventId;
  }

  /** `PUT rooms/{roomId}/state/{eventType}/{stateKey}`. */
  async setState(roomId: string, userId: string, type: string, stateKey: string, content: Record<string, unknown>): Promise<string> {
    await this.requireRoom(roomId);
    if (type === "m.room.member") {
      const target = stateKey;
      if (!this.isLocal(target)) throw new MatrixError("M_FORBIDDEN", "Federation is not enabled", 403);
    }
    if (type === "m.room.canonical_alias") await this.checkCanonicalAlias(roomId, content);
    const r = await this.deps.events.send(roomId, { type, stateKey, sender: userId, content }, { dedupeState: true });
    return r.eventId;
  }

  private async checkCanonicalAlias(roomId: string, content: Record<string, unknown>): Promise<void> {
    const aliases = [content.alias, ...(Array.isArray(content.alt_aliases) ? content.alt_aliases : [])].filter((a) => a !== undefined && a !== null);
    for (const a of aliases) {
      if (typeof a !== "string" || !isValidRoomAlias(a)) throw new MatrixError("M_INVALID_PARAM", "Invalid alias", 400);
      const rec = this.isLocal(a) ? await this.deps.rooms.getAlias(a) : undefined;
      if (this.isLocal(a) && rec?.roomId !== roomId) throw new MatrixError("M_BAD_ALIAS", `Room alias ${a} does not point to the room`, 400);
    }
  }

  /**
   * `GET rooms/{roomId}/state`. NOTSPEC: a user who has left gets 403 rather than the state at
   * the moment they left (we keep no historical state snapshots yet).
   */
  async getState(roomId: string, userId: string): Promise<ClientEventOut[]> {
    await this.requireJoined(roomId, userId);
    const now = this.deps.clock.now();
    return (await this.deps.rooms.getCurrentState(roomId)).map((e) => toClientEvent(e, now));
  }

  /** `GET rooms/{roomId}/state/{eventType}/{stateKey}`: the content, or the event with format=event. */
  async getStateEvent(roomId: string, userId: string, type: string, stateKey: string): Promise<EventRecord> {
    await this.requireJoined(roomId, userId);
    const m = await this.deps.rooms.getStateEvents(roomId, [{ type, stateKey }]);
    const e = m.get(stateKeyId(type, stateKey));
    if (!e) throw new MatrixError("M_NOT_FOUND", "Event not found.", 404);
    return e;
  }

  /** `GET rooms/{roomId}/messages`. */
  async messages(
    roomId: string,
    viewer: { userId: string; deviceId: string },
    q: { from?: string | undefined; to?: string | undefined; dir?: "b" | "f" | undefined; limit?: number | undefined },
  ): Promise<{ start: string; end?: string; chunk: ClientEventOut[] }> {
    const upTo = await this.visibleUpTo(roomId, viewer.userId);
    const dir = q.dir ?? "f";
    const limit = Math.min(Math.max(q.limit ?? 10, 0), 1000);
    const to = parseStreamToken(q.to);
    const now = this.deps.clock.now();
    let from = parseStreamToken(q.from);
    if (dir === "b") {
      from = Math.min(from ?? upTo, upTo);
      let events = await this.deps.rooms.getRoomEvents(roomId, { dir: "b", upTo: from, limit });
      if (to !== undefined) events = events.filter((e) => e.streamOrdering > to);
      const out: { start: string; end?: string; chunk: ClientEventOut[] } = {
        start: streamToken(from),
        chunk: events.map((e) => toClientEvent(e, now, { viewer })),
      };
      const last = events[events.length - 1];
      if (last && events.length === limit) out.end = streamToken(last.streamOrdering - 1);
      return out;
    }
    from = from ?? 0;
    let events = await this.deps.rooms.getRoomEvents(roomId, { dir: "f", after: from, upTo, limit });
    if (to !== undefined) events = events.filter((e) => e.streamOrdering <= to);
    const out: { start: string; end?: string; chunk: ClientEventOut[] } = { start: streamToken(from), chunk: events.map((e) => toClientEvent(e, now, { viewer })) };
    const last = events[events.length - 1];
    if (last) out.end = streamToken(last.streamOrdering);
    return out;
  }

  /** `GET rooms/{roomId}/event/{eventId}`: 404 unless the event is in the room and visible to the user. */
  async getEvent(roomId: string, eventId: string, viewer: { userId: string; deviceId: string }): Promise<ClientEventOut> {
    const upTo = await this.visibleUpTo(roomId, viewer.userId);
    const e = await this.deps.rooms.getEvent(eventId);
    if (!e || e.roomId !== roomId || e.streamOrdering > upTo) throw new MatrixError("M_NOT_FOUND", "Event not found.", 404);
    return toClientEvent(e, this.deps.clock.now(), { viewer });
  }

  /** `GET rooms/{roomId}/aliases`: the room's local aliases, for members. */
  async roomAliases(roomId: string, userId: string): Promise<string[]> {
    await this.requireJoined(roomId, userId);
    return this.deps.rooms.getRoomAliases(roomId);
  }

  /** `GET rooms/{roomId}/members`. */
  async members(roomId: string, userId: string, q: { membership?: string | undefined; not_membership?: string | undefined }): Promise<ClientEventOut[]> {
    await this.visibleUpTo(roomId, userId);
    const ms = (await this.deps.rooms.getRoomMemberships(roomId)).filter(
      (m) => (q.membership === undefined || m.membership === q.membership) && (q.not_membership === undefined || m.membership !== q.not_membership),
    );
    const now = this.deps.clock.now();
    const events = new Map((await this.deps.rooms.getEvents(ms.map((m) => m.eventId))).map((e) => [e.eventId, e]));
    const out: ClientEventOut[] = [];
    for (const m of ms) {
      const e = events.get(m.eventId);
      if (e) out.push(toClientEvent(e, now));
    }
    return out;
  }

  /** `GET rooms/{roomId}/joined_members`. */
  async joinedMembers(roomId: string, userId: string): Promise<Record<string, { display_name?: string | null; avatar_url?: string | null }>> {
    await this.requireJoined(roomId, userId);
    const ms = (await this.deps.rooms.getRoomMemberships(roomId)).filter((m) => m.membership === "join");
    const state = await this.deps.rooms.getStateEvents(
      roomId,
      ms.map((m) => ({ type: "m.room.member", stateKey: m.userId })),
    );
    const out: Record<string, { display_name?: string | null; avatar_url?: string | null }> = {};
    for (const m of ms) {
      const c = state.get(stateKeyId("m.room.member", m.userId))?.pdu.content ?? {};
      out[m.userId] = {
        display_name: typeof c.displayname === "string" ? c.displayname : null,
        avatar_url: typeof c.avatar_url === "string" ? c.avatar_url : null,
      };
    }
    return out;
  }

  /** `GET joined_rooms`. */
  async joinedRooms(userId: string): Promise<string[]> {
    return (await this.deps.rooms.getUserMemberships(userId)).filter((m) => m.membership === "join").map((m) => m.roomId);
  }

  // ---------------------------------------------------------------------------------------
  // Aliases

  checkLocalAlias(alias: string): void {
    if (!isValidRoomAlias(alias)) throw new MatrixError("M_INVALID_PARAM", "Invalid room alias", 400);
    if (!this.isLocal(alias)) throw new MatrixError("M_INVALID_PARAM", "Room alias must be on this server", 400);
  }

  /** `PUT directory/room/{roomAlias}`: 409 when taken. */
  async setAlias(alias: string, roomId: string, userId: string): Promise<void> {
    this.checkLocalAlias(alias);
    await this.requireRoom(roomId);
    const ok = await this.deps.rooms.insertAlias({ alias, roomId, creator: userId, now: this.deps.clock.now() });
    if (!ok) throw new MatrixError("M_UNKNOWN", `Room alias ${alias} already exists`, 409);
  }

  /** `GET directory/room/{roomAlias}`. */
  async resolveAlias(alias: string): Promise<{ room_id: string; servers: string[] }> {
    if (!isValidRoomAlias(alias)) throw new MatrixError("M_INVALID_PARAM", "Invalid room alias", 400);
    if (!this.isLocal(alias)) throw new MatrixError("M_NOT_FOUND", "Room alias not found (federation is not enabled)", 404);
    const rec = await this.deps.rooms.getAlias(alias);
    if (!rec) throw new MatrixError("M_NOT_FOUND", `Room alias ${alias} not found`, 404);
    return { room_id: rec.roomId, servers: [this.deps.serverName] };
  }

  /** `DELETE directory/room/{roomAlias}`: by its creator, a server admin, or a room member allowed to set the canonical alias. */
  async deleteAlias(alias: string, userId: string): Promise<void> {
    this.checkLocalAlias(alias);
    const rec = await this.deps.rooms.getAlias(alias);
    if (!rec) throw new MatrixError("M_NOT_FOUND", `Room alias ${alias} not found`, 404);
    if (rec.creator !== userId && !(await this.deps.accounts.getUser(userId))?.isAdmin) {
      const room = await this.deps.rooms.getRoom(rec.roomId);
      const m = await this.deps.rooms.getMembership(rec.roomId, userId);
      if (!room || m?.membership !== "join") throw new MatrixError("M_FORBIDDEN", "You may not delete this alias", 403);
      const state = await this.deps.rooms.getStateEvents(rec.roomId, [
        { type: "m.room.power_levels", stateKey: "" },
        { type: "m.room.create", stateKey: "" },
      ]);
      const map = new Map<string, PDU>();
      for (const [k, e] of state) map.set(k, e.pdu);
      const pl = powerLevelsFromState(map, asRoomVersion(room.roomVersion));
      if (pl.userLevel(userId) < pl.eventLevel("m.room.canonical_alias", true)) throw new MatrixError("M_FORBIDDEN", "You may not delete this alias", 403);
    }
    await this.deps.rooms.deleteAlias(alias);
  }

  /** Sends a draft (for other domain modules). */
  send(roomId: string, draft: EventDraft): Promise<{ eventId: string; created: boolean }> {
    return this.deps.events.send(roomId, draft);
  }
}
