/**
 * Test helpers for the 3PID domain (used by `*.test.ts` only): an in-memory room core that
 * implements `RoomOps`/`ProfileOps`/`AccountOps` with the auth rules that matter here
 * (spec-digest §3.2, §3.4), and a deps builder over a real database.
 */
import { MatrixError, isJsonObject } from "@beckon/protocol";
import { openDatabase, runMigrations, FakeClock, systemClock, type Clock, type DatabaseHandle } from "@beckon/server-kit";
import { pino } from "pino";
import type { AccountOps, Membership, NewEvent, ProfileOps, RoomOps, StoredEvent } from "./contracts.js";
import { threepidMigrations, type ThreepidDatabase } from "./threepid-storage.js";
import type { ThreepidDeps } from "./threepid-deps.js";
import type { OutboundLike } from "../identity/outbound.js";
import { inviteKeys } from "./onbind.js";

interface FakeRoom {
  version: string;
  state: Map<string, StoredEvent>;
  events: StoredEvent[];
}

export class FakeRooms implements RoomOps, ProfileOps, AccountOps {
  readonly rooms = new Map<string, FakeRoom>();
  readonly users = new Set<string>();
  readonly profiles = new Map<string, { displayname?: string; avatar_url?: string }>();
  /** Every sendEvent call's input that was accepted. */
  readonly sent: NewEvent[] = [];
  /** Delay of each sendEvent (to widen race windows). */
  sendDelayMs = 0;
  /** Make the next sendEvent calls fail with this (non-Matrix) error. */
  failSends = 0;
  #n = 0;

  createRoom(roomId: string, creator: string, version = "10"): void {
    this.users.add(creator);
    this.rooms.set(roomId, { version, state: new Map(), events: [] });
    this.#persist(roomId, { roomId, sender: creator, type: "m.room.member", stateKey: creator, content: { membership: "join" } });
  }

  #persist(roomId: string, ev: NewEvent): StoredEvent {
    const room = this.rooms.get(roomId)!;
    const stored: StoredEvent = {
      event_id: `$ev${++this.#n}`,
      room_id: roomId,
      type: ev.type,
      sender: ev.sender,
      content: structuredClone(ev.content),
      origin_server_ts: Date.now(),
      ...(ev.stateKey !== undefined ? { state_key: ev.stateKey } : {}),
    };
    room.events.push(stored);
    if (ev.stateKey !== undefined) room.state.set(`${ev.type}\u0000${ev.stateKey}`, stored);
    return stored;
  }

  /** Events of a type in a room (timeline order). */
  eventsOf(roomId: string, type: string): StoredEvent[] {
    return (this.rooms.get(roomId)?.events ?? []).filter((e) => e.type === type);
  }

  async getRoomVersion(roomId: string): Promise<string | undefined> {
    return this.rooms.get(roomId)?.version;
  }
  async getStateEvent(roomId: string, type: string, stateKey: string): Promise<StoredEvent | undefined> {
    return this.rooms.get(roomId)?.state.get(`${type}\u0000${stateKey}`);
  }
  async getMembership(roomId: string, userId: string): Promise<Membership | undefined> {
    const m = (await this.getStateEvent(roomId, "m.room.member", userId))?.content.membership;
    return typeof m === "string" ? (m as Membership) : undefined;
  }
  async checkInviteAndDetails(roomId: string, sender: string) {
    if (!this.rooms.has(roomId)) throw new MatrixError("M_NOT_FOUND", "Unknown room", 404);
    if ((await this.getMembership(roomId, sender)) !== "join") throw new MatrixError("M_FORBIDDEN", "You are not in the room", 403);
    return { room_name: "The Room", room_join_rules: "invite", room_alias: "#room:hs.test" };
  }
  async sendEvent(ev: NewEvent): Promise<{ eventId: string }> {
    if (this.sendDelayMs > 0) await new Promise((r) => setTimeout(r, this.sendDelayMs));
    if (this.failSends > 0) {
      this.failSends--;
      throw new Error("database is on fire");
    }
    const room = this.rooms.get(ev.roomId);
    if (!room) throw new MatrixError("M_NOT_FOUND", "Unknown room", 404);
    if (ev.keepCurrentIf && ev.stateKey !== undefined) {
      const cur = await this.getStateEvent(ev.roomId, ev.type, ev.stateKey);
      if (cur && ev.keepCurrentIf(cur.content)) {
        await this.#inTransaction(ev);
        return { eventId: cur.event_id };
      }
    }
    const senderM = await this.getMembership(ev.roomId, ev.sender);
    const deny = (why: string) => new MatrixError("M_FORBIDDEN", why, 403);
    if (ev.type === "m.room.member" && ev.content.membership === "invite") {
      const target = ev.stateKey!;
      const targetM = await this.getMembership(ev.roomId, target);
      if (targetM === "ban") throw deny("target banned");
      const tpi = ev.content.third_party_invite;
      if (tpi !== undefined) {
        const signed = isJsonObject(tpi) ? tpi.signed : undefined;
        if (!isJsonObject(signed) || signed.mxid !== target || typeof signed.token !== "string") throw deny("bad signed");
        const inv = await this.getStateEvent(ev.roomId, "m.room.third_party_invite", signed.token);
        if (!inv || inv.sender !== ev.sender || inviteKeys(inv.content).length === 0) throw deny("no matching third-party invite");
      } else {
        if (senderM !== "join") throw deny("sender not joined");
        if (targetM === "join") throw deny("target already joined");
      }
    } else if (ev.type === "m.room.member" && ev.content.membership === "join") {
      if (ev.sender !== ev.stateKey) throw deny("join for another user");
    } else if (senderM !== "join") {
      throw deny("sender not joined");
    }
    // No transactions here: the caller's work runs before the event is kept, so a failing
    // write leaves no event behind (as the real core's rollback does).
    await this.#inTransaction(ev);
    const stored = this.#persist(ev.roomId, ev);
    this.sent.push(ev);
    return { eventId: stored.event_id };
  }

  /** The database the caller's `inTransaction` work runs on (the deps builder sets it). */
  db: unknown;
  async #inTransaction(ev: NewEvent): Promise<void> {
    if (!ev.inTransaction) return;
    if (this.db === undefined) throw new Error("FakeRooms.db is not set");
    await ev.inTransaction(this.db);
  }
  async getProfile(userId: string) {
    return this.profiles.get(userId) ?? {};
  }
  async userExists(userId: string): Promise<boolean> {
    return this.users.has(userId);
  }
}

export interface DepsOptions {
  outbound: OutboundLike;
  map: Record<string, string>;
  url?: string;
  clock?: Clock;
  rooms?: FakeRooms;
  timeoutMs?: number;
}

/** A database with the 3PID tables (SQLite in memory unless `url`). */
export async function threepidTestDb(url = "sqlite::memory:"): Promise<DatabaseHandle<ThreepidDatabase>> {
  const handle = await openDatabase<ThreepidDatabase>({ url });
  await runMigrations(handle, threepidMigrations, "hs_migrations");
  return handle;
}

export function threepidTestDeps(handle: DatabaseHandle<ThreepidDatabase>, o: DepsOptions): ThreepidDeps<ThreepidDatabase> & { rooms: FakeRooms } {
  const rooms = o.rooms ?? new FakeRooms();
  rooms.db ??= handle.db;
  return {
    rooms,
    profiles: rooms,
    accounts: rooms,
    config: { identityServers: { map: o.map }, identityServerTimeoutMs: o.timeoutMs ?? 2000 },
    serverName: "hs.test",
    signingKey: { keyId: "ed25519:a", seed: new Uint8Array(32).fill(3) },
    outbound: o.outbound,
    clock: o.clock ?? systemClock,
    logger: pino({ level: "silent" }),
    db: handle.db,
  };
}

export { FakeClock };
