/**
 * Rooms and their events: the event log (full PDUs in stream order), the current-state and
 * membership projections (rebuildable from the log), transaction ids, aliases.
 *
 * Writers go through {@link RoomStore.withRoomWrite}: one transaction holding the room's row
 * lock (PostgreSQL `FOR UPDATE`; SQLite has one writer), so every room stays a chain with one
 * forward extremity even with several processes. Stream positions come from one counter row
 * updated inside the same transaction, so they are handed out in commit order.
 */
import type { Kysely, Transaction } from "kysely";
import { inTransaction, runSql, type Engine } from "@beckon/server-kit";
import { stateKeyId, type PDU } from "@beckon/protocol";
import type { HomeserverDB } from "./schema.js";

export interface RoomRecord {
  roomId: string;
  roomVersion: string;
  creator: string;
  createdTs: number;
  latestEventId: string;
  latestDepth: number;
  latestStream: number;
}

/** An event as stored, with its position in the stream. */
export interface EventRecord {
  eventId: string;
  streamOrdering: number;
  roomId: string;
  type: string;
  stateKey: string | undefined;
  sender: string;
  originServerTs: number;
  pdu: PDU;
  unsigned: Record<string, unknown> | undefined;
  txnDeviceId: string | undefined;
  txnId: string | undefined;
}

export interface NewEventRecord {
  eventId: string;
  pdu: PDU;
  /** Local unsigned data (`prev_content`, …). */
  unsigned?: Record<string, unknown>;
  txn?: { userId: string; deviceId: string; txnId: string };
  /** `JSON.stringify(pdu)` when the caller has it already (stored as is). */
  json?: string;
}

export interface MembershipRecord {
  roomId: string;
  userId: string;
  membership: string;
  eventId: string;
  streamOrdering: number;
  forgotten: boolean;
}

export interface StateKey {
  type: string;
  stateKey: string;
}

/** Operations inside one room's write transaction. */
export interface RoomWriteTx {
  /** The room as locked at the start of the transaction (undefined for a new room). */
  readonly room: RoomRecord | undefined;
  /** The transaction itself: other modules' rows that must commit (or roll back) with the events. */
  readonly db: Transaction<HomeserverDB>;
  /** Current state events for the given keys, keyed by `stateKeyId`. */
  getState(keys: readonly StateKey[]): Promise<Map<string, EventRecord>>;
  getTxn(userId: string, deviceId: string, txnId: string): Promise<string | undefined>;
  getAliasRoom(alias: string): Promise<string | undefined>;
  insertRoom(r: Omit<RoomRecord, "latestEventId" | "latestDepth" | "latestStream">): Promise<void>;
  insertAlias(a: { alias: string; roomId: string; creator: string; now: number }): Promise<void>;
  /** Appends events (in order) to the room: positions, state and membership projections, latest event. */
  append(events: readonly NewEventRecord[]): Promise<EventRecord[]>;
}

export interface RoomStore {
  withRoomWrite<T>(roomId: string, fn: (tx: RoomWriteTx) => Promise<T>): Promise<T>;
  /**
   * Like {@link withRoomWrite} for several rooms in ONE transaction (rooms locked in sorted
   * order, so concurrent multi-room writers cannot deadlock): `fn` gets each room's tx.
   */
  withRoomsWrite<T>(roomIds: readonly string[], fn: (txs: ReadonlyMap<string, RoomWriteTx>) => Promise<T>): Promise<T>;
  getRoom(roomId: string): Promise<RoomRecord | undefined>;
  getEvent(eventId: string): Promise<EventRecord | undefined>;
  /** Events by ID (missing ones are left out). */
  getEvents(eventIds: readonly string[]): Promise<EventRecord[]>;
  /** Current state of several rooms for the given types with an empty state key, plus (room, member) pairs. */
  getStateOfRooms(roomIds: readonly string[], types: readonly string[], members: readonly { roomId: string; userId: string }[]): Promise<EventRecord[]>;
  /** Every current state event of the room. */
  getCurrentState(roomId: string): Promise<EventRecord[]>;
  getStateEvents(roomId: string, keys: readonly StateKey[]): Promise<Map<string, EventRecord>>;
  /**
   * Like {@link getStateEvents} for a room whose latest event the caller has just read as
   * `latestEventId`: served from the writers' state cache while it is at that event, which
   * learns what it lacked (the query reads the room's latest event in the same statement, so
   * what it learns belongs to one state). The records are shared: callers must not change them.
   */
  getStateEventsAt(roomId: string, latestEventId: string, keys: readonly StateKey[]): Promise<Map<string, EventRecord>>;
  getMembership(roomId: string, userId: string): Promise<MembershipRecord | undefined>;
  /** Memberships of the user in every room (any membership). */
  getUserMemberships(userId: string): Promise<MembershipRecord[]>;
  getRoomMemberships(roomId: string): Promise<MembershipRecord[]>;
  /** Every event with `from < stream_ordering ≤ to`, ascending (short windows: sync wake-ups). */
  getStreamRange(from: number, to: number): Promise<EventRecord[]>;
  /** Events of the given rooms with `from < stream_ordering ≤ to`, ascending. */
  getEventsBetween(roomIds: readonly string[], from: number, to: number): Promise<EventRecord[]>;
  /**
   * The room's events with stream_ordering ≤ `upTo` (descending, newest first) when `dir` is
   * "b", or > `after` ascending when "f"; at most `limit`.
   */
  getRoomEvents(roomId: string, opts: { dir: "b"; upTo: number; limit: number } | { dir: "f"; after: number; upTo: number; limit: number }): Promise<EventRecord[]>;
  /** The newest stream position handed out. */
  currentStreamPos(): Promise<number>;
  getTxn(userId: string, deviceId: string, txnId: string): Promise<string | undefined>;
  setForgotten(roomId: string, userId: string): Promise<void>;
  getAlias(alias: string): Promise<{ roomId: string; creator: string } | undefined>;
  getRoomAliases(roomId: string): Promise<string[]>;
  /** False when the alias exists. */
  insertAlias(a: { alias: string; roomId: string; creator: string; now: number }): Promise<boolean>;
  deleteAlias(alias: string): Promise<boolean>;
  /** Recomputes `hs_current_state` and `hs_memberships` of a room from its event log. */
  rebuildRoomProjections(roomId: string): Promise<void>;
  /** Every room ID (for rebuilding all projections). */
  listRoomIds(): Promise<string[]>;
}

type EventRow = HomeserverDB["hs_events"];

function toEventRecord(r: EventRow): EventRecord {
  return {
    eventId: r.event_id,
    streamOrdering: Number(r.stream_ordering),
    roomId: r.room_id,
    type: r.type,
    stateKey: r.state_key ?? undefined,
    sender: r.sender,
    originServerTs: Number(r.origin_server_ts),
    pdu: JSON.parse(r.json) as PDU,
    unsigned: r.unsigned_json ? (JSON.parse(r.unsigned_json) as Record<string, unknown>) : undefined,
    txnDeviceId: r.txn_device_id ?? undefined,
    txnId: r.txn_id ?? undefined,
  };
}

function toRoomRecord(r: HomeserverDB["hs_rooms"]): RoomRecord {
  return {
    roomId: r.room_id,
    roomVersion: r.room_version,
    creator: r.creator,
    createdTs: Number(r.created_ts),
    latestEventId: r.latest_event_id,
    latestDepth: Number(r.latest_depth),
    latestStream: Number(r.latest_stream),
  };
}

function toMembership(r: HomeserverDB["hs_memberships"]): MembershipRecord {
  return {
    roomId: r.room_id,
    userId: r.user_id,
    membership: r.membership,
    eventId: r.event_id,
    streamOrdering: Number(r.stream_ordering),
    forgotten: r.forgotten === 1,
  };
}

const CHUNK = 200;

function chunks<T>(xs: readonly T[], n = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

type Db = Kysely<HomeserverDB> | Transaction<HomeserverDB>;

const EVENT_COLS = "e.event_id, e.stream_ordering, e.room_id, e.type, e.state_key, e.sender, e.origin_server_ts, e.json, e.unsigned_json, e.txn_device_id, e.txn_id";

/**
 * The current state for `keys` (`null` = absent), one statement per 100 keys. With
 * `withLatest`, the same statement also reads the room's latest event (one snapshot on both
 * engines): `latest` is undefined when the chunks disagree (a write in between), the room does
 * not exist, or it was not asked for.
 */
async function selectState(
  db: Db,
  roomId: string,
  keys: readonly StateKey[],
  withLatest = false,
): Promise<{ latest: string | undefined; found: Map<string, EventRecord | null> }> {
  const found = new Map<string, EventRecord | null>();
  let latest: string | null | undefined;
  for (const part of chunks(keys, 100)) {
    // The wanted keys as a VALUES list driving primary-key probes. (`room_id = ? AND (type = ?
    // AND state_key = ? OR …)` made SQLite walk the room's whole current state: 236 µs per
    // call at 2 000 members against 7 µs for these probes.)
    const params: unknown[] = [];
    for (const k of part) params.push(k.type, k.stateKey);
    if (withLatest) params.push(roomId);
    params.push(roomId);
    const rows = await runSql<Partial<EventRow> & { want_type: string; want_state_key: string; latest: string | null }>(
      db,
      `WITH k(t, s) AS (VALUES ${part.map(() => "(?, ?)").join(", ")}) ` +
        `SELECT k.t AS want_type, k.s AS want_state_key, ${withLatest ? "(SELECT latest_event_id FROM hs_rooms WHERE room_id = ?)" : "NULL"} AS latest, ${EVENT_COLS} ` +
        "FROM k LEFT JOIN hs_current_state cs ON cs.room_id = ? AND cs.type = k.t AND cs.state_key = k.s LEFT JOIN hs_events e ON e.event_id = cs.event_id",
      params,
    );
    for (const r of rows) {
      latest = latest === undefined || latest === r.latest ? r.latest : null;
      found.set(stateKeyId(r.want_type, r.want_state_key), r.event_id ? toEventRecord(r as EventRow) : null);
    }
  }
  return { latest: latest ?? undefined, found };
}

/** Splits `keys` into what `cached` knows (present ones into `out`) and what must be read. */
function fromCache(keys: readonly StateKey[], cached: (id: string) => EventRecord | null | undefined): { out: Map<string, EventRecord>; missing: StateKey[] } {
  const out = new Map<string, EventRecord>();
  const missing: StateKey[] = [];
  for (const k of keys) {
    const id = stateKeyId(k.type, k.stateKey);
    const c = cached(id);
    if (c === undefined) missing.push(k);
    else if (c !== null) out.set(id, c);
  }
  return { out, missing };
}

/** Applies events (ascending) to the projections. Events must already be in hs_events. */
async function project(trx: Db, roomId: string, events: readonly EventRecord[]): Promise<void> {
  const state = new Map<string, { type: string; stateKey: string; eventId: string }>();
  const members = new Map<string, { userId: string; membership: string; eventId: string; so: number }>();
  for (const e of events) {
    if (e.stateKey === undefined) continue;
    state.set(stateKeyId(e.type, e.stateKey), { type: e.type, stateKey: e.stateKey, eventId: e.eventId });
    if (e.type === "m.room.member") {
      const m = e.pdu.content.membership;
      if (typeof m === "string") members.set(e.stateKey, { userId: e.stateKey, membership: m, eventId: e.eventId, so: e.streamOrdering });
    }
  }
  for (const part of chunks([...state.values()])) {
    const params: unknown[] = [];
    for (const x of part) params.push(roomId, x.type, x.stateKey, x.eventId);
    await runSql(trx, `INSERT INTO hs_current_state (room_id, type, state_key, event_id) VALUES ${part.map(() => "(?, ?, ?, ?)").join(", ")} ` +
        "ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
      params,
    );
  }
  for (const part of chunks([...members.values()])) {
    const params: unknown[] = [];
    for (const m of part) params.push(roomId, m.userId, m.membership, m.eventId, m.so);
    // A new join or invite brings a forgotten room back; a leave keeps the flag.
    await runSql(trx, `INSERT INTO hs_memberships (room_id, user_id, membership, event_id, stream_ordering, forgotten) VALUES ${part.map(() => "(?, ?, ?, ?, ?, 0)").join(", ")} ` +
        "ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership, event_id = excluded.event_id, " +
        "stream_ordering = excluded.stream_ordering, forgotten = CASE WHEN excluded.membership IN ('join', 'invite') THEN 0 ELSE hs_memberships.forgotten END",
      params,
    );
  }
}

/**
 * Only a cache: the state entries a room's writers read, valid while the room's forward
 * extremity is the one they were read at (checked under the room lock on every write, so a
 * write by another process invalidates it). `null` = known absent.
 */
interface CachedState {
  latestEventId: string;
  entries: Map<string, EventRecord | null>;
}
const STATE_CACHE_ROOMS = 2000;
/** A room whose cached entries grow past this starts over (bounded memory for huge rooms). */
const STATE_CACHE_ENTRIES_PER_ROOM = 5000;

export function createRoomStore(db: Kysely<HomeserverDB>, engine: Engine): RoomStore {
  const stateCache = new Map<string, CachedState>();
  type Staged = { base: CachedState | undefined; startLatest: string; local: Map<string, EventRecord | null>; latestAfter: string } | undefined;
  /** Locks and reads one room inside `trx`; `stage()` after the work gives what the cache learns on commit. */
  async function openRoomTx(trx: Transaction<HomeserverDB>, roomId: string): Promise<{ tx: RoomWriteTx; stage(): Staged }> {
      const rows = await runSql<HomeserverDB["hs_rooms"]>(trx, `SELECT room_id, room_version, creator, created_ts, latest_event_id, latest_depth, latest_stream FROM hs_rooms WHERE room_id = ?${engine === "postgres" ? " FOR UPDATE" : ""}`,
        [roomId],
      );
      let room = rows[0] ? toRoomRecord(rows[0]) : undefined;
      // Read through the shared cache when it matches the locked room; changes stay local
      // until the commit (the shared cache is only touched afterwards).
      const hit = stateCache.get(roomId);
      let base = room && hit && hit.latestEventId === room.latestEventId ? hit : undefined;
      const local = new Map<string, EventRecord | null>();
      const startLatest = room?.latestEventId ?? "";
      let latestAfter = startLatest;
      const cached = (id: string): EventRecord | null | undefined => (local.has(id) ? local.get(id) : base?.entries.get(id));
      const tx: RoomWriteTx = {
        get room() {
          return room;
        },
        db: trx,
        async getState(keys) {
          const { out, missing } = fromCache(keys, cached);
          if (missing.length > 0) {
            const { found } = await selectState(trx, roomId, missing);
            for (const [id, e] of found) {
              if (e) out.set(id, e);
              local.set(id, e);
            }
          }
          return out;
        },
        async getTxn(userId, deviceId, txnId) {
          const r = await runSql<{ event_id: string }>(trx, "SELECT event_id FROM hs_txns WHERE user_id = ? AND device_id = ? AND txn_id = ?", [userId, deviceId, txnId]);
          return r[0]?.event_id;
        },
        async getAliasRoom(alias) {
          const r = await trx.selectFrom("hs_aliases").select("room_id").where("alias", "=", alias).executeTakeFirst();
          return r?.room_id;
        },
        async insertRoom(r) {
          await trx
            .insertInto("hs_rooms")
            .values({
              room_id: r.roomId,
              room_version: r.roomVersion,
              creator: r.creator,
              created_ts: r.createdTs,
              latest_event_id: "",
              latest_depth: 0,
              latest_stream: 0,
            })
            .execute();
          room = { ...r, latestEventId: "", latestDepth: 0, latestStream: 0 };
          base = undefined;
        },
        async insertAlias(a) {
          await trx.insertInto("hs_aliases").values({ alias: a.alias, room_id: a.roomId, creator: a.creator, created_ts: a.now }).execute();
        },
        async append(events) {
          if (events.length === 0) return [];
          if (!room) throw new Error(`append to unknown room ${roomId}`);
          const upd = await runSql<{ pos: number | string }>(trx, "UPDATE hs_stream SET pos = pos + ? WHERE id = 1 RETURNING pos", [events.length]);
          const first = Number(upd[0]!.pos) - events.length + 1;
          const records: EventRecord[] = events.map((e, i) => ({
            eventId: e.eventId,
            streamOrdering: first + i,
            roomId,
            type: e.pdu.type,
            stateKey: e.pdu.state_key,
            sender: e.pdu.sender,
            originServerTs: e.pdu.origin_server_ts,
            pdu: e.pdu,
            unsigned: e.unsigned,
            txnDeviceId: e.txn?.deviceId,
            txnId: e.txn?.txnId,
          }));
          const jsonOf = new Map<string, string>();
          for (const e of events) if (e.json !== undefined) jsonOf.set(e.eventId, e.json);
          for (const part of chunks(records, 50)) {
            const params: unknown[] = [];
            for (const r of part) {
              params.push(
                r.eventId,
                r.streamOrdering,
                roomId,
                r.type,
                r.stateKey ?? null,
                r.sender,
                r.originServerTs,
                jsonOf.get(r.eventId) ?? JSON.stringify(r.pdu),
                r.unsigned && Object.keys(r.unsigned).length > 0 ? JSON.stringify(r.unsigned) : null,
                r.txnDeviceId ?? null,
                r.txnId ?? null,
              );
            }
            await runSql(trx, "INSERT INTO hs_events (event_id, stream_ordering, room_id, type, state_key, sender, origin_server_ts, json, unsigned_json, txn_device_id, txn_id) VALUES " +
                part.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)").join(", "),
              params,
            );
          }
          await project(trx, roomId, records);
          for (const e of events) {
            if (!e.txn) continue;
            await runSql(trx, "INSERT INTO hs_txns (user_id, device_id, txn_id, event_id, created_ts) VALUES (?, ?, ?, ?, ?)", [
              e.txn.userId,
              e.txn.deviceId,
              e.txn.txnId,
              e.eventId,
              e.pdu.origin_server_ts,
            ]);
          }
          const last = records[records.length - 1]!;
          await runSql(trx, "UPDATE hs_rooms SET latest_event_id = ?, latest_depth = ?, latest_stream = ? WHERE room_id = ?", [
            last.eventId,
            last.pdu.depth,
            last.streamOrdering,
            roomId,
          ]);
          room = { ...room, latestEventId: last.eventId, latestDepth: last.pdu.depth, latestStream: last.streamOrdering };
          for (const r of records) if (r.stateKey !== undefined) local.set(stateKeyId(r.type, r.stateKey), r);
          latestAfter = last.eventId;
          return records;
        },
      };
    return { tx, stage: () => (room ? { base, startLatest, local, latestAfter } : undefined) };
  }
  /** After a commit: the room's cache entry learns what the transaction read and wrote. */
  function applyStaged(roomId: string, staged: Staged): void {
    if (!staged) {
      stateCache.delete(roomId);
      return;
    }
    // Extend the entry we read through when nothing replaced it meanwhile; else start over.
    const cur = stateCache.get(roomId);
    const target: CachedState = cur && cur === staged.base && cur.latestEventId === staged.startLatest ? cur : { latestEventId: "", entries: new Map() };
    for (const [k, v] of staged.local) target.entries.set(k, v);
    target.latestEventId = staged.latestAfter;
    remember(roomId, target);
  }
  /** (Re)inserts a room's entry as the newest; bounded in rooms and entries per room. */
  function remember(roomId: string, entry: CachedState): void {
    stateCache.delete(roomId);
    if (entry.entries.size > STATE_CACHE_ENTRIES_PER_ROOM) return;
    if (stateCache.size >= STATE_CACHE_ROOMS) {
      const oldest = stateCache.keys().next();
      if (!oldest.done) stateCache.delete(oldest.value);
    }
    stateCache.set(roomId, entry);
  }
  const store: RoomStore = {
    async withRoomWrite(roomId, fn) {
      let staged: Staged;
      const result = await inTransaction(db, async (trx) => {
        staged = undefined;
        const o = await openRoomTx(trx, roomId);
        const out = await fn(o.tx);
        staged = o.stage();
        return out;
      });
      applyStaged(roomId, staged);
      return result;
    },
    async withRoomsWrite(roomIds, fn) {
      const ids = [...new Set(roomIds)].sort();
      let staged: Staged[] = [];
      const result = await inTransaction(db, async (trx) => {
        staged = [];
        const opened: { tx: RoomWriteTx; stage(): Staged }[] = [];
        for (const id of ids) opened.push(await openRoomTx(trx, id));
        const out = await fn(new Map(ids.map((id, i) => [id, opened[i]!.tx])));
        staged = opened.map((o) => o.stage());
        return out;
      });
      ids.forEach((id, i) => applyStaged(id, staged[i]));
      return result;
    },
    async getRoom(roomId) {
      const [r] = await runSql<HomeserverDB["hs_rooms"]>(db, "SELECT room_id, room_version, creator, created_ts, latest_event_id, latest_depth, latest_stream FROM hs_rooms WHERE room_id = ?",
        [roomId],
      );
      return r ? toRoomRecord(r) : undefined;
    },
    async getEvent(eventId) {
      const r = await db.selectFrom("hs_events").selectAll().where("event_id", "=", eventId).executeTakeFirst();
      return r ? toEventRecord(r) : undefined;
    },
    async getEvents(eventIds) {
      const out: EventRecord[] = [];
      for (const part of chunks(eventIds, 500)) {
        const rows = await runSql<EventRow>(db, `SELECT ${EVENT_COLS} FROM hs_events e WHERE e.event_id IN (${part.map(() => "?").join(", ")})`, part);
        for (const r of rows) out.push(toEventRecord(r));
      }
      return out;
    },
    async getStateOfRooms(roomIds, types, members) {
      const out: EventRecord[] = [];
      if (types.length > 0) {
        for (const part of chunks(roomIds, 200)) {
          const rows = await runSql<EventRow>(db, `SELECT ${EVENT_COLS} FROM hs_current_state cs JOIN hs_events e ON e.event_id = cs.event_id ` +
              `WHERE cs.room_id IN (${part.map(() => "?").join(", ")}) AND cs.type IN (${types.map(() => "?").join(", ")}) AND cs.state_key = ''`,
            [...part, ...types],
          );
          for (const r of rows) out.push(toEventRecord(r));
        }
      }
      for (const part of chunks(members, 200)) {
        const rows = await runSql<EventRow>(db, `WITH k(r, u) AS (VALUES ${part.map(() => "(?, ?)").join(", ")}) ` +
            `SELECT ${EVENT_COLS} FROM k JOIN hs_current_state cs ON cs.room_id = k.r AND cs.type = 'm.room.member' AND cs.state_key = k.u ` +
            `JOIN hs_events e ON e.event_id = cs.event_id`,
          part.flatMap((m) => [m.roomId, m.userId]),
        );
        for (const r of rows) out.push(toEventRecord(r));
      }
      return out;
    },
    async getCurrentState(roomId) {
      const rows = await db
        .selectFrom("hs_current_state as cs")
        .innerJoin("hs_events as e", "e.event_id", "cs.event_id")
        .selectAll("e")
        .where("cs.room_id", "=", roomId)
        .orderBy("e.stream_ordering")
        .execute();
      return rows.map(toEventRecord);
    },
    async getStateEvents(roomId, keys) {
      const { found } = await selectState(db, roomId, keys);
      const out = new Map<string, EventRecord>();
      for (const [id, e] of found) if (e) out.set(id, e);
      return out;
    },
    async getStateEventsAt(roomId, latestEventId, keys) {
      const hit = stateCache.get(roomId);
      const { out, missing } = hit && hit.latestEventId === latestEventId ? fromCache(keys, (id) => hit.entries.get(id)) : { out: new Map<string, EventRecord>(), missing: keys };
      if (missing.length === 0) return out;
      const { latest, found } = await selectState(db, roomId, missing, true);
      for (const [id, e] of found) if (e) out.set(id, e);
      if (latest === undefined) return out;
      // Teach the cache when it is (still) at the state just read, or start it for the room.
      const cur = stateCache.get(roomId);
      if (!cur) remember(roomId, { latestEventId: latest, entries: found });
      else if (cur.latestEventId === latest && cur.entries.size + found.size <= STATE_CACHE_ENTRIES_PER_ROOM) for (const [id, e] of found) cur.entries.set(id, e);
      return out;
    },
    async getMembership(roomId, userId) {
      const [r] = await runSql<HomeserverDB["hs_memberships"]>(db, "SELECT room_id, user_id, membership, event_id, stream_ordering, forgotten FROM hs_memberships WHERE room_id = ? AND user_id = ?",
        [roomId, userId],
      );
      return r ? toMembership(r) : undefined;
    },
    async getUserMemberships(userId) {
      const rows = await db.selectFrom("hs_memberships").selectAll().where("user_id", "=", userId).execute();
      return rows.map(toMembership);
    },
    async getRoomMemberships(roomId) {
      const rows = await db.selectFrom("hs_memberships").selectAll().where("room_id", "=", roomId).orderBy("stream_ordering").execute();
      return rows.map(toMembership);
    },
    async getStreamRange(from, to) {
      if (to <= from) return [];
      const rows = await runSql<EventRow>(db, `SELECT ${EVENT_COLS} FROM hs_events e WHERE e.stream_ordering > ? AND e.stream_ordering <= ? ORDER BY e.stream_ordering`,
        [from, to],
      );
      return rows.map(toEventRecord);
    },
    async getEventsBetween(roomIds, from, to) {
      if (roomIds.length === 0 || to <= from) return [];
      const out: EventRecord[] = [];
      for (const part of chunks(roomIds, 500)) {
        const rows = await db
          .selectFrom("hs_events")
          .selectAll()
          .where("room_id", "in", part)
          .where("stream_ordering", ">", from)
          .where("stream_ordering", "<=", to)
          .orderBy("stream_ordering")
          .execute();
        for (const r of rows) out.push(toEventRecord(r));
      }
      out.sort((a, b) => a.streamOrdering - b.streamOrdering);
      return out;
    },
    async getRoomEvents(roomId, opts) {
      let q = db.selectFrom("hs_events").selectAll().where("room_id", "=", roomId).where("stream_ordering", "<=", opts.upTo);
      if (opts.dir === "b") q = q.orderBy("stream_ordering", "desc");
      else q = q.where("stream_ordering", ">", opts.after).orderBy("stream_ordering", "asc");
      const rows = await q.limit(opts.limit).execute();
      return rows.map(toEventRecord);
    },
    async currentStreamPos() {
      const r = await db.selectFrom("hs_stream").select("pos").where("id", "=", 1).executeTakeFirstOrThrow();
      return Number(r.pos);
    },
    async getTxn(userId, deviceId, txnId) {
      const r = await db
        .selectFrom("hs_txns")
        .select("event_id")
        .where("user_id", "=", userId)
        .where("device_id", "=", deviceId)
        .where("txn_id", "=", txnId)
        .executeTakeFirst();
      return r?.event_id;
    },
    async setForgotten(roomId, userId) {
      await db.updateTable("hs_memberships").set({ forgotten: 1 }).where("room_id", "=", roomId).where("user_id", "=", userId).execute();
    },
    async getAlias(alias) {
      const r = await db.selectFrom("hs_aliases").select(["room_id", "creator"]).where("alias", "=", alias).executeTakeFirst();
      return r ? { roomId: r.room_id, creator: r.creator } : undefined;
    },
    async getRoomAliases(roomId) {
      const rows = await db.selectFrom("hs_aliases").select("alias").where("room_id", "=", roomId).orderBy("created_ts").execute();
      return rows.map((r) => r.alias);
    },
    async insertAlias(a) {
      const r = await db
        .insertInto("hs_aliases")
        .values({ alias: a.alias, room_id: a.roomId, creator: a.creator, created_ts: a.now })
        .onConflict((oc) => oc.column("alias").doNothing())
        .executeTakeFirst();
      return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
    },
    async deleteAlias(alias) {
      const r = await db.deleteFrom("hs_aliases").where("alias", "=", alias).executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    },
    async rebuildRoomProjections(roomId) {
      await inTransaction(db, async (trx) => {
        let q = trx.selectFrom("hs_rooms").select("room_id").where("room_id", "=", roomId);
        if (engine === "postgres") q = q.forUpdate();
        await q.executeTakeFirst();
        const forgotten = await trx.selectFrom("hs_memberships").select("user_id").where("room_id", "=", roomId).where("forgotten", "=", 1).execute();
        await trx.deleteFrom("hs_current_state").where("room_id", "=", roomId).execute();
        await trx.deleteFrom("hs_memberships").where("room_id", "=", roomId).execute();
        const rows = await trx
          .selectFrom("hs_events")
          .selectAll()
          .where("room_id", "=", roomId)
          .where("state_key", "is not", null)
          .orderBy("stream_ordering")
          .execute();
        stateCache.delete(roomId);
        await project(trx, roomId, rows.map(toEventRecord));
        for (const f of forgotten) {
          await trx
            .updateTable("hs_memberships")
            .set({ forgotten: 1 })
            .where("room_id", "=", roomId)
            .where("user_id", "=", f.user_id)
            .where("membership", "not in", ["join", "invite"])
            .execute();
        }
      });
    },
    async listRoomIds() {
      const rows = await db.selectFrom("hs_rooms").select("room_id").orderBy("created_ts").execute();
      return rows.map((r) => r.room_id);
    },
  };
  return store;
}
