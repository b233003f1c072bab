/**
 * The write path of every room event: choose prev and auth events, build the signed and
 * hashed PDU, run the spec's auth rules against the room's state, persist, announce.
 *
 * A room on a single server is a chain: each new event's `prev_events` is the room's one
 * forward extremity, read under the room's row lock (see `RoomStore.withRoomWrite`).
 */
import { MatrixError, stateKeyId, type PDU, type RoomVersion } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import type { Clock, Notifier } from "@beckon/server-kit";
import { authEventKeys, checkEventAuth } from "./auth-rules.js";
import { verifyEd25519Memo } from "./verify-cache.js";
import { buildPdu, nextDepth, selectAuthEvents, type ServerSigningKey } from "./pdu.js";
import type { EventRecord, NewEventRecord, RoomStore, RoomWriteTx, StateKey } from "../storage/index.js";

/** What a caller asks for; the core fills in everything else. */
export interface EventDraft {
  type: string;
  stateKey?: string;
  sender: string;
  content: Record<string, unknown>;
}

/** A state map entry during building: the event ID and its PDU. */
export interface StateEntry {
  eventId: string;
  pdu: PDU;
}

export type StateMap = Map<string, StateEntry>;

// Third-party invite signatures were usually just verified by the onbind / third_party_signed check.
const verify = verifyEd25519Memo;
/** node:crypto SHA-256 for the event IDs the rules compute (the default is the portable pure-JS one). */
const AUTH_OPTIONS = { hash: (b: Uint8Array): Uint8Array => nodeCryptoProvider.sha256Sync(b) };

/** Largest PDU, in bytes of JSON (spec: 65 536). */
const MAX_PDU_BYTES = 65_536;

/** Notifier channel for a room's events. */
export function roomChannel(roomId: string): string {
  return `room:${roomId}`;
}
/** Notifier channel for events that concern a user (their memberships). */
export function userChannel(userId: string): string {
  return `user:${userId}`;
}

export function asRoomVersion(v: string): RoomVersion {
  if (v !== "10" && v !== "11") throw new MatrixError("M_UNSUPPORTED_ROOM_VERSION", `Room version ${v} is not supported`, 400);
  return v;
}

/** Builds the chain of events in memory: used for a whole new room and for single sends. */
export class ChainBuilder {
  readonly built: NewEventRecord[] = [];
  constructor(
    private readonly roomId: string,
    private readonly roomVersion: RoomVersion,
    private readonly key: ServerSigningKey,
    private readonly now: number,
    private prevEventId: string | undefined,
    private depth: number,
    /** Current state; updated as state events are added. */
    readonly state: StateMap,
  ) {}

  /**
   * Builds, authorises and appends one event to the in-memory chain. Throws 403 M_FORBIDDEN
   * when the auth rules refuse it.
   */
  add(draft: EventDraft, extra: { txn?: NewEventRecord["txn"] } = {}): NewEventRecord {
    if (Buffer.byteLength(draft.type) > 255) throw new MatrixError("M_INVALID_PARAM", "Event type is longer than 255 bytes", 400);
    if (draft.stateKey !== undefined && Buffer.byteLength(draft.stateKey) > 255) throw new MatrixError("M_INVALID_PARAM", "State key is longer than 255 bytes", 400);
    const partial = { type: draft.type, sender: draft.sender, content: draft.content, ...(draft.stateKey !== undefined ? { state_key: draft.stateKey } : {}) };
    const auth = selectAuthEvents(partial, this.state);
    const { eventId, pdu } = buildPdu(
      {
        roomVersion: this.roomVersion,
        roomId: this.roomId,
        type: draft.type,
        ...(draft.stateKey !== undefined ? { stateKey: draft.stateKey } : {}),
        sender: draft.sender,
        content: draft.content,
        prevEvents: this.prevEventId ? [this.prevEventId] : [],
        authEvents: auth.map((a) => a.eventId),
        depth: this.prevEventId ? nextDepth([this.depth]) : 1,
        originServerTs: this.now,
      },
      this.key,
    );
    // Size limits every server enforces (https://spec.matrix.org/v1.18/client-server-api/#size-limits).
    const json = JSON.stringify(pdu);
    if (Buffer.byteLength(json) > MAX_PDU_BYTES) throw new MatrixError("M_TOO_LARGE", "Event is too large", 413);
    const authState = new Map<string, PDU>();
    for (const a of auth) authState.set(stateKeyId(a.pdu.type, a.pdu.state_key ?? ""), a.pdu);
    const result = checkEventAuth(pdu, authState, this.roomVersion, verify, AUTH_OPTIONS);
    if (!result.allowed) throw new MatrixError("M_FORBIDDEN", `Event not allowed: ${result.reason}`, 403);
    let unsigned: Record<string, unknown> | undefined;
    if (draft.stateKey !== undefined) {
      const k = stateKeyId(draft.type, draft.stateKey);
      const prev = this.state.get(k);
      if (prev) unsigned = { replaces_state: prev.eventId, prev_content: prev.pdu.content, prev_sender: prev.pdu.sender };
      this.state.set(k, { eventId, pdu });
    }
    this.prevEventId = eventId;
    this.depth = pdu.depth;
    const rec: NewEventRecord = { eventId, pdu, json, ...(unsigned ? { unsigned } : {}), ...(extra.txn ? { txn: extra.txn } : {}) };
    this.built.push(rec);
    return rec;
  }
}

/** The state keys a single new event needs: its auth events and its own (for `prev_content`). */
export function keysForDraft(draft: EventDraft, extra: readonly StateKey[] = []): StateKey[] {
  const keys = authEventKeys({ type: draft.type, sender: draft.sender, content: draft.content, ...(draft.stateKey !== undefined ? { state_key: draft.stateKey } : {}) }).map(
    splitKey,
  );
  if (draft.stateKey !== undefined) keys.push({ type: draft.type, stateKey: draft.stateKey });
  keys.push(...extra);
  return keys;
}

function splitKey(k: string): StateKey {
  const i = k.indexOf("\u0000");
  return { type: k.slice(0, i), stateKey: k.slice(i + 1) };
}

export function toStateMap(records: Map<string, EventRecord>): StateMap {
  const m: StateMap = new Map();
  for (const [k, r] of records) m.set(k, { eventId: r.eventId, pdu: r.pdu });
  return m;
}

export interface SendOptions {
  txn?: { userId: string; deviceId: string; txnId: string };
  /**
   * Checks run inside the room's transaction, before building, against the current state of
   * {@link keysForDraft} plus `extraKeys` (e.g. membership pre-checks). Return a string event ID
   * to answer with an existing event instead of sending (idempotent no-ops).
   */
  precheck?: (state: StateMap, tx: RoomWriteTx) => string | undefined | Promise<string | undefined>;
  extraKeys?: readonly StateKey[];
  /** Return the existing event when a state event would repeat the current one (same sender, same content). */
  dedupeState?: boolean;
  /**
   * Runs inside the room's transaction once the event is built (or answered by `precheck` /
   * `dedupeState`), so that the caller's own rows commit or roll back with it.
   */
  inTransaction?: (tx: RoomWriteTx, eventId: string) => Promise<void>;
}

/** Wraps an error of a caller's `inTransaction` work, which must abort the whole transaction. */
class InTransactionError extends Error {}

async function inTx(opts: SendOptions, tx: RoomWriteTx, eventId: string): Promise<void> {
  if (!opts.inTransaction) return;
  try {
    await opts.inTransaction(tx, eventId);
  } catch (e) {
    throw new InTransactionError("inTransaction failed", { cause: e });
  }
}

interface Pending {
  draft: EventDraft;
  opts: SendOptions;
  resolve: (r: { eventId: string; created: boolean }) => void;
  reject: (e: unknown) => void;
}

/** Most events written in one transaction. */
const MAX_BATCH = 64;
/** Most rooms whose first batches share one transaction. */
const MAX_ROOMS_PER_TX = 128;

type Outcome = { ok: true; eventId: string; built?: string } | { ok: false; error: unknown };

export interface RoomEventsDeps {
  rooms: RoomStore;
  key: ServerSigningKey;
  clock: Clock;
  notifier: Notifier;
}

/** Sends events into existing rooms. */
export class RoomEvents {
  constructor(private readonly deps: RoomEventsDeps) {}

  get key(): ServerSigningKey {
    return this.deps.key;
  }

  /**
   * Sends one event; returns its ID (or the existing event's ID for idempotent repeats).
   *
   * Sends to one room queue up in this process and are written in batches: one transaction
   * (room lock, stream positions, multi-row inserts) for everything waiting, each event still
   * built and authorised on its own against the state left by the ones before it. An event
   * refused by its pre-check or the auth rules fails alone; a database error retries the batch
   * one event at a time.
   */
  send(roomId: string, draft: EventDraft, opts: SendOptions = {}): Promise<{ eventId: string; created: boolean }> {
    return new Promise((resolve, reject) => {
      const item: Pending = { draft, opts, resolve, reject };
      const q = this.queues.get(roomId);
      if (q) {
        q.push(item);
        return;
      }
      const fresh = [item];
      this.queues.set(roomId, fresh);
      // One turn of the event loop lets concurrent sends to this room join the batch, and
      // sends to other rooms share its transaction.
      this.fresh.push(roomId);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private readonly queues = new Map<string, Pending[]>();
  /** Rooms whose queue was created since the last flush. */
  private fresh: string[] = [];
  private flushScheduled = false;

  /**
   * Starts the queues created since the last turn: one room drains on its own; several rooms
   * (e.g. an onbind inviting one user into many rooms) write their first batches in one
   * transaction (at most {@link MAX_ROOMS_PER_TX} rooms each), then drain on their own.
   */
  private async flush(): Promise<void> {
    this.flushScheduled = false;
    const rooms = this.fresh;
    this.fresh = [];
    if (rooms.length === 1) {
      const q = this.queues.get(rooms[0]!);
      if (q) await this.drain(rooms[0]!, q);
      return;
    }
    for (let i = 0; i < rooms.length; i += MAX_ROOMS_PER_TX) {
      const groups: [string, Pending[]][] = [];
      for (const roomId of rooms.slice(i, i + MAX_ROOMS_PER_TX)) {
        const q = this.queues.get(roomId);
        if (q) groups.push([roomId, q.splice(0, MAX_BATCH)]);
      }
      try {
        await this.runMulti(groups);
      } catch (e) {
        for (const [, batch] of groups) for (const p of batch) p.reject(e);
      }
      // Whatever arrived meanwhile drains per room, as a single room's queue would.
      for (const [roomId] of groups) {
        const q = this.queues.get(roomId);
        if (q && q.length > 0) void this.drain(roomId, q);
        else this.queues.delete(roomId);
      }
    }
  }

  private async drain(roomId: string, q: Pending[]): Promise<void> {
    let batch: Pending[] = [];
    try {
      while (q.length > 0) {
        batch = q.splice(0, MAX_BATCH);
        await this.runBatch(roomId, batch, true);
      }
    } catch (e) {
      // Not expected (runBatch settles every item itself); never leave a caller hanging.
      for (const p of [...batch, ...q.splice(0)]) p.reject(e);
    } finally {
      this.queues.delete(roomId);
    }
  }

  /** Builds, authorises and appends one room's batch inside `tx`; one outcome per item. */
  private async processBatch(roomId: string, tx: RoomWriteTx, batch: Pending[]): Promise<{ outcomes: Outcome[]; stored: EventRecord[] }> {
    const outcomes: Outcome[] = [];
    const room = tx.room;
    if (!room) {
      for (let i = 0; i < batch.length; i++) outcomes.push({ ok: false, error: new MatrixError("M_NOT_FOUND", "Unknown room", 404) });
      return { outcomes, stored: [] };
    }
    const state: StateMap = new Map();
    const loaded = new Set<string>();
    const chain = new ChainBuilder(roomId, asRoomVersion(room.roomVersion), this.deps.key, this.deps.clock.now(), room.latestEventId, room.latestDepth, state);
    const batchTxns = new Map<string, string>();
    // One query for the state every event of the batch needs (later events may add more).
    const wanted = new Map<string, StateKey>();
    for (const p of batch) for (const k of keysForDraft(p.draft, p.opts.extraKeys)) wanted.set(stateKeyId(k.type, k.stateKey), k);
    const prefetched = await tx.getState([...wanted.values()]);
    for (const [id, e] of prefetched) state.set(id, { eventId: e.eventId, pdu: e.pdu });
    for (const id of wanted.keys()) loaded.add(id);
    for (const p of batch) {
      try {
        const { draft, opts } = p;
        const txnKey = opts.txn ? `${opts.txn.userId}\u0000${opts.txn.deviceId}\u0000${opts.txn.txnId}` : undefined;
        if (opts.txn && txnKey) {
          const existing = batchTxns.get(txnKey) ?? (await tx.getTxn(opts.txn.userId, opts.txn.deviceId, opts.txn.txnId));
          if (existing) {
            outcomes.push({ ok: true, eventId: existing });
            continue;
          }
        }
        const keys = keysForDraft(draft, opts.extraKeys).filter((k) => {
          const id = stateKeyId(k.type, k.stateKey);
          return !loaded.has(id) && !state.has(id);
        });
        if (keys.length > 0) {
          const got = await tx.getState(keys);
          for (const k of keys) {
            const id = stateKeyId(k.type, k.stateKey);
            loaded.add(id);
            const e = got.get(id);
            if (e && !state.has(id)) state.set(id, { eventId: e.eventId, pdu: e.pdu });
          }
        }
        if (opts.precheck) {
          const existing = await opts.precheck(state, tx);
          if (existing !== undefined) {
            await inTx(opts, tx, existing);
            outcomes.push({ ok: true, eventId: existing });
            continue;
          }
        }
        if (opts.dedupeState && draft.stateKey !== undefined) {
          const cur = state.get(stateKeyId(draft.type, draft.stateKey));
          if (cur && cur.pdu.sender === draft.sender && sameJson(cur.pdu.content, draft.content)) {
            await inTx(opts, tx, cur.eventId);
            outcomes.push({ ok: true, eventId: cur.eventId });
            continue;
          }
        }
        const rec = chain.add(draft, opts.txn ? { txn: opts.txn } : {});
        await inTx(opts, tx, rec.eventId);
        if (txnKey) batchTxns.set(txnKey, rec.eventId);
        outcomes.push({ ok: true, eventId: rec.eventId, built: rec.eventId });
      } catch (e) {
        // A failed `inTransaction` write fails the transaction (the batch is retried one by one).
        if (e instanceof InTransactionError) throw e.cause;
        outcomes.push({ ok: false, error: e });
      }
    }
    return { outcomes, stored: await tx.append(chain.built) };
  }

  /** Announces what was stored and settles every caller of the batch. */
  private settle(batch: Pending[], outcomes: Outcome[], stored: EventRecord[]): void {
    const byId = new Map(stored.map((r) => [r.eventId, r]));
    if (stored.length > 0) this.announce(stored);
    batch.forEach((p, i) => {
      const o = outcomes[i];
      if (!o) p.reject(new Error("internal: no outcome"));
      else if (!o.ok) p.reject(o.error);
      else p.resolve({ eventId: o.eventId, created: o.built !== undefined && byId.has(o.built) });
    });
  }

  private async runBatch(roomId: string, batch: Pending[], mayRetry: boolean): Promise<void> {
    let res: { outcomes: Outcome[]; stored: EventRecord[] };
    try {
      res = await this.deps.rooms.withRoomWrite(roomId, (tx) => this.processBatch(roomId, tx, batch));
    } catch (e) {
      if (mayRetry && batch.length > 1) {
        for (const p of batch) await this.runBatch(roomId, [p], false);
        return;
      }
      for (const p of batch) p.reject(e);
      return;
    }
    this.settle(batch, res.outcomes, res.stored);
  }

  /** First batches of several rooms in one transaction; on a database error, room by room. */
  private async runMulti(groups: [string, Pending[]][]): Promise<void> {
    let results: { outcomes: Outcome[]; stored: EventRecord[] }[];
    try {
      results = await this.deps.rooms.withRoomsWrite(
        groups.map(([roomId]) => roomId),
        async (txs) => {
          const out: { outcomes: Outcome[]; stored: EventRecord[] }[] = [];
          for (const [roomId, batch] of groups) out.push(await this.processBatch(roomId, txs.get(roomId)!, batch));
          return out;
        },
      );
    } catch {
      for (const [roomId, batch] of groups) await this.runBatch(roomId, batch, true);
      return;
    }
    groups.forEach(([, batch], i) => this.settle(batch, results[i]!.outcomes, results[i]!.stored));
  }

  /** Wakes sync long-polls for new events (after commit). */
  announce(events: readonly EventRecord[]): void {
    const rooms = new Set<string>();
    for (const e of events) {
      rooms.add(e.roomId);
      if (e.type === "m.room.member" && e.stateKey !== undefined) this.deps.notifier.notify(userChannel(e.stateKey), e.roomId);
    }
    for (const r of rooms) this.deps.notifier.notify(roomChannel(r));
  }
}

/** Structural equality of two JSON values. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => sameJson(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao);
  if (ak.length !== Object.keys(bo).length) return false;
  return ak.every((k) => Object.prototype.hasOwnProperty.call(bo, k) && sameJson(ao[k], bo[k]));
}
