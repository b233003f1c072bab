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

const verify = (pk: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean => nodeCryptoProvider.ed25519VerifySync(pk, msg, sig);

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
    const authState = new Map<string, PDU>();
    for (const a of auth) authState.set(stateKeyId(a.pdu.type, a.pdu.state_key ?? ""), a.pdu);
    const result = checkEventAuth(pdu, authState, this.roomVersion, verify);
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
    const rec: NewEventRecord = { eventId, pdu, ...(unsigned ? { unsigned } : {}), ...(extra.txn ? { txn: extra.txn } : {}) };
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
}

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

  /** Sends one event; returns its ID (or the existing event's ID for idempotent repeats). */
  async send(roomId: string, draft: EventDraft, opts: SendOptions = {}): Promise<{ eventId: string; created: boolean }> {
    const result = await this.deps.rooms.withRoomWrite(roomId, async (tx) => {
      const room = tx.room;
      if (!room) throw new MatrixError("M_NOT_FOUND", "Unknown room", 404);
      if (opts.txn) {
        const existing = await tx.getTxn(opts.txn.userId, opts.txn.deviceId, opts.txn.txnId);
        if (existing) return { eventId: existing, created: undefined };
      }
      const state = toStateMap(await tx.getState(keysForDraft(draft, opts.extraKeys)));
      if (opts.precheck) {
        const existing = await opts.precheck(state, tx);
        if (existing !== undefined) return { eventId: existing, created: undefined };
      }
      if (opts.dedupeState && draft.stateKey !== undefined) {
        const cur = state.get(stateKeyId(draft.type, draft.stateKey));
        if (cur && cur.pdu.sender === draft.sender && sameJson(cur.pdu.content, draft.content)) return { eventId: cur.eventId, created: undefined };
      }
      const chain = new ChainBuilder(roomId, asRoomVersion(room.roomVersion), this.deps.key, this.deps.clock.now(), room.latestEventId, room.latestDepth, state);
      const rec = chain.add(draft, opts.txn ? { txn: opts.txn } : {});
      const [stored] = await tx.append([rec]);
      return { eventId: rec.eventId, created: stored };
    });
    if (result.created) this.announce([result.created]);
    return { eventId: result.eventId, created: result.created !== undefined };
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
