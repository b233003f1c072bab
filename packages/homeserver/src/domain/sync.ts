/**
 * `GET /sync` (https://spec.matrix.org/v1.18/client-server-api/#get_matrixclientv3sync):
 * initial and incremental, `rooms.join` / `invite` / `leave`, a basic filter
 * (`room.include_leave`, `room.timeline.limit`), and long-polling that sleeps until the
 * notifier says something happened in one of the user's rooms (no database polling).
 *
 * Tokens are stream positions (`s<n>`): the response covers events up to the position read
 * at its start, so an event committed meanwhile is in the next response.
 */
import { MatrixError, isJsonObject, parseJson, stateKeyId } from "@beckon/protocol";
import type { Clock, Notifier } from "@beckon/server-kit";
import type { EventRecord, MembershipRecord, RoomStore } from "../storage/index.js";
import { roomChannel, userChannel } from "./room-events.js";
import { parseStreamToken, streamToken, toClientEvent, type ClientEventOut } from "./rooms.js";

export interface SyncFilter {
  includeLeave: boolean;
  timelineLimit: number;
}

export interface StrippedEvent {
  type: string;
  state_key: string;
  sender: string;
  content: Record<string, unknown>;
}

type Ev = Omit<ClientEventOut, "room_id">;

export interface JoinedRoom {
  timeline: { events: Ev[]; limited: boolean; prev_batch: string };
  state: { events: Ev[] };
  ephemeral: { events: never[] };
  account_data: { events: AccountDataEvent[] };
  summary: Record<string, unknown>;
  unread_notifications: { highlight_count: number; notification_count: number };
}

type AccountDataEvent = { type: string; content: Record<string, unknown> };

export interface SyncResult {
  next_batch: string;
  rooms: {
    join: Record<string, JoinedRoom>;
    invite: Record<string, { invite_state: { events: StrippedEvent[] } }>;
    leave: Record<string, { timeline: { events: Ev[]; limited: boolean; prev_batch: string }; state: { events: Ev[] } }>;
    knock: Record<string, never>;
  };
  account_data: { events: AccountDataEvent[] };
  presence: { events: never[] };
  to_device: { events: never[] };
  device_lists: { changed: never[]; left: never[] };
  device_one_time_keys_count: Record<string, never>;
}

export interface SyncDeps {
  rooms: RoomStore;
  /** A stored filter's JSON by ID (`POST user/{userId}/filter`). */
  loadFilter?: (userId: string, filterId: string) => Promise<string | undefined>;
  /** The user's account data changed after `since` (all without); `roomId` "" = global. */
  accountData?: (userId: string, since?: number) => Promise<{ roomId: string; type: string; content: Record<string, unknown>; streamOrdering: number }[]>;
  notifier: Notifier;
  clock: Clock;
}

/** The state shown to invitees (spec's recommended list, DECISIONS.md: plus their own invite). */
const INVITE_STATE_TYPES = ["m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias", "m.room.encryption", "m.room.topic"];

const DEFAULT_TIMELINE_LIMIT = 20;
/** Stream windows up to this many positions are read with one range scan. */
const SHORT_WINDOW = 2000;
const MAX_TIMEOUT_MS = 5 * 60_000;

/** Parses an inline JSON filter (filter IDs are not stored: an unknown ID means defaults). */
export function parseSyncFilter(filter: string | undefined): SyncFilter {
  const out: SyncFilter = { includeLeave: false, timelineLimit: DEFAULT_TIMELINE_LIMIT };
  if (filter === undefined || !filter.trim().startsWith("{")) return out;
  let f: unknown;
  try {
    f = parseJson(filter);
  } catch {
    throw new MatrixError("M_INVALID_PARAM", "filter is not valid JSON", 400);
  }
  if (!isJsonObject(f)) throw new MatrixError("M_INVALID_PARAM", "filter must be an object", 400);
  const room = f.room;
  if (isJsonObject(room)) {
    if (room.include_leave === true) out.includeLeave = true;
    const tl = room.timeline;
    if (isJsonObject(tl) && typeof tl.limit === "number" && Number.isSafeInteger(tl.limit) && tl.limit >= 0) out.timelineLimit = Math.min(tl.limit, 1000);
  }
  return out;
}

function strip(e: EventRecord): StrippedEvent {
  return { type: e.type, state_key: e.stateKey ?? "", sender: e.sender, content: e.pdu.content };
}

function isEmpty(r: SyncResult): boolean {
  return (
    Object.keys(r.rooms.join).length === 0 &&
    Object.keys(r.rooms.invite).length === 0 &&
    Object.keys(r.rooms.leave).length === 0 &&
    r.account_data.events.length === 0
  );
}

function emptyJoined(prevBatch: string): JoinedRoom {
  return {
    timeline: { events: [], limited: false, prev_batch: prevBatch },
    state: { events: [] },
    ephemeral: { events: [] },
    account_data: { events: [] },
    summary: {},
    unread_notifications: { highlight_count: 0, notification_count: 0 },
  };
}

export class Sync {
  private closing = false;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly deps: SyncDeps) {}

  /** Answers every waiting long-poll now (graceful shutdown must not wait for their timeouts). */
  shutdown(): void {
    this.closing = true;
    for (const w of [...this.waiters]) w();
  }

  /** One sync request: answers at once when there is news, else waits up to `timeoutMs`. */
  async sync(viewer: { userId: string; deviceId: string }, q: { since?: string | undefined; timeout?: number | undefined; filter?: string | undefined; full_state?: string | undefined }): Promise<SyncResult> {
    let filterText = q.filter;
    if (filterText !== undefined && !filterText.trim().startsWith("{")) filterText = (await this.deps.loadFilter?.(viewer.userId, filterText)) ?? undefined;
    const filter = parseSyncFilter(filterText);
    const since = q.full_state === "true" ? undefined : parseStreamToken(q.since);
    const timeout = Math.min(q.timeout ?? 0, MAX_TIMEOUT_MS);
    if (since === undefined || timeout <= 0) return this.compute(viewer, since, filter);

    // Subscribe before reading, so a commit between the read and the wait is not missed.
    let wake: (() => void) | undefined;
    let woken = false;
    const onWake = () => {
      woken = true;
      wake?.();
    };
    const memberships = await this.deps.rooms.getUserMemberships(viewer.userId);
    this.waiters.add(onWake);
    const unsubs = [this.deps.notifier.subscribe(userChannel(viewer.userId), onWake), () => this.waiters.delete(onWake)];
    for (const m of memberships) if (m.membership === "join") unsubs.push(this.deps.notifier.subscribe(roomChannel(m.roomId), onWake));
    const deadline = this.deps.clock.now() + timeout;
    try {
      for (;;) {
        woken = false;
        const r = await this.compute(viewer, since, filter);
        if (!isEmpty(r)) return r;
        const left = deadline - this.deps.clock.now();
        if (left <= 0 || this.closing) return r;
        if (!woken) {
          await new Promise<void>((resolve) => {
            const cancel = this.deps.clock.setTimeout(() => resolve(), left);
            wake = () => {
              cancel();
              resolve();
            };
          });
          wake = undefined;
        }
      }
    } finally {
      for (const u of unsubs) u();
    }
  }

  async compute(viewer: { userId: string; deviceId: string }, since: number | undefined, filter: SyncFilter): Promise<SyncResult> {
    const rooms = this.deps.rooms;
    const now = this.deps.clock.now();
    const pos = await rooms.currentStreamPos();
    const memberships = await rooms.getUserMemberships(viewer.userId);
    const result: SyncResult = {
      next_batch: streamToken(pos),
      rooms: { join: {}, invite: {}, leave: {}, knock: {} },
      account_data: { events: [] },
      presence: { events: [] },
      to_device: { events: [] },
      device_lists: { changed: [], left: [] },
      device_one_time_keys_count: {},
    };
    const fmt = (e: EventRecord): Ev => {
      const c = toClientEvent(e, now, { withRoomId: false, viewer });
      return c;
    };
    const joinedSteady: MembershipRecord[] = [];
    const invites: MembershipRecord[] = [];
    for (const m of memberships) {
      if (m.forgotten || m.streamOrdering > pos) continue;
      const changed = since === undefined || m.streamOrdering > since;
      if (m.membership === "join") {
        if (changed && !(await this.wasJoinedBefore(m, since))) {
          result.rooms.join[m.roomId] = await this.fullJoinedRoom(m.roomId, pos, filter.timelineLimit, fmt);
        } else {
          joinedSteady.push(m);
        }
      } else if (m.membership === "invite") {
        if (changed) invites.push(m);
      } else if (m.membership === "leave" || m.membership === "ban") {
        if (since === undefined ? filter.includeLeave : changed) {
          const from = since ?? 0;
          const all = await rooms.getRoomEvents(m.roomId, { dir: "b", upTo: m.streamOrdering, limit: filter.timelineLimit + 1 });
          const events = all.filter((e) => e.streamOrdering > from).slice(0, filter.timelineLimit).reverse();
          // A rejected invite gives no access to the timeline: only the leave itself is shown.
          const leaveEv = await rooms.getEvent(m.eventId);
          const prev = leaveEv?.unsigned?.prev_content as Record<string, unknown> | undefined;
          const sawRoom = prev?.membership === "join" || events.some((e) => e.type === "m.room.member" && e.stateKey === viewer.userId && e.pdu.content.membership === "join");
          const visible = sawRoom ? events : events.filter((e) => e.eventId === m.eventId);
          const first = visible[0];
          result.rooms.leave[m.roomId] = {
            timeline: { events: visible.map(fmt), limited: all.length > visible.length, prev_batch: streamToken(first ? first.streamOrdering - 1 : m.streamOrdering) },
            state: { events: [] },
          };
        }
      }
    }
    if (invites.length > 0) {
      for (const [roomId, events] of await this.inviteStates(invites)) result.rooms.invite[roomId] = { invite_state: { events } };
    }
    if (since !== undefined && joinedSteady.length > 0) {
      // A short window (the usual long-poll wake-up) is one range scan of the stream; a long
      // one is read room by room.
      const steady = new Set(joinedSteady.map((m) => m.roomId));
      const events =
        pos - since <= SHORT_WINDOW
          ? (await rooms.getStreamRange(since, pos)).filter((e) => steady.has(e.roomId))
          : await rooms.getEventsBetween([...steady], since, pos);
      const byRoom = new Map<string, EventRecord[]>();
      for (const e of events) {
        let list = byRoom.get(e.roomId);
        if (!list) byRoom.set(e.roomId, (list = []));
        list.push(e);
      }
      for (const [roomId, list] of byRoom) {
        const limited = list.length > filter.timelineLimit;
        const timeline = limited ? list.slice(list.length - filter.timelineLimit) : list;
        const first = timeline[0];
        let state: Ev[] = [];
        if (limited) {
          // State that changed in the gap before the timeline: its current values.
          const inTimeline = new Set(timeline.map((e) => e.eventId));
          const keys = new Map<string, { type: string; stateKey: string }>();
          for (const e of list.slice(0, list.length - timeline.length)) if (e.stateKey !== undefined) keys.set(stateKeyId(e.type, e.stateKey), { type: e.type, stateKey: e.stateKey });
          const cur = await rooms.getStateEvents(roomId, [...keys.values()]);
          state = [...cur.values()].filter((e) => !inTimeline.has(e.eventId) && e.streamOrdering <= pos).map(fmt);
        }
        result.rooms.join[roomId] = {
          timeline: { events: timeline.map(fmt), limited, prev_batch: streamToken(first ? first.streamOrdering - 1 : since) },
          state: { events: state },
          ephemeral: { events: [] },
          account_data: { events: [] },
          summary: {},
          unread_notifications: { highlight_count: 0, notification_count: 0 },
        };
      }
    }
    if (this.deps.accountData) {
      const joined = new Set(memberships.filter((m) => m.membership === "join" && !m.forgotten).map((m) => m.roomId));
      for (const a of await this.deps.accountData(viewer.userId, since)) {
        if (a.streamOrdering > pos) continue;
        const ev = { type: a.type, content: a.content };
        if (a.roomId === "") result.account_data.events.push(ev);
        else if (joined.has(a.roomId)) (result.rooms.join[a.roomId] ??= emptyJoined(result.next_batch)).account_data.events.push(ev);
      }
    }
    return result;
  }

  /** True when a join in the window only changed the profile (the user was joined before `since`). */
  private async wasJoinedBefore(m: MembershipRecord, since: number | undefined): Promise<boolean> {
    if (since === undefined) return false;
    const ev = await this.deps.rooms.getEvent(m.eventId);
    const prev = ev?.unsigned?.prev_content as Record<string, unknown> | undefined;
    if (prev?.membership !== "join") return false;
    // Only if every membership change in the window kept them joined; a leave-and-rejoin shows a full room.
    const events = await this.deps.rooms.getEventsBetween([m.roomId], since, m.streamOrdering);
    return !events.some((e) => e.type === "m.room.member" && e.stateKey === m.userId && e.pdu.content.membership !== "join");
  }

  private async fullJoinedRoom(roomId: string, pos: number, limit: number, fmt: (e: EventRecord) => Ev): Promise<JoinedRoom> {
    const rooms = this.deps.rooms;
    const recent = (await rooms.getRoomEvents(roomId, { dir: "b", upTo: pos, limit: limit + 1 })).reverse();
    const limited = recent.length > limit;
    const timeline = limited ? recent.slice(1) : recent;
    const inTimeline = new Set(timeline.map((e) => e.eventId));
    const state = (await rooms.getCurrentState(roomId)).filter((e) => !inTimeline.has(e.eventId) && e.streamOrdering <= pos);
    const first = timeline[0];
    return {
      timeline: { events: timeline.map(fmt), limited, prev_batch: streamToken(first ? first.streamOrdering - 1 : pos) },
      state: { events: state.map(fmt) },
      ephemeral: { events: [] },
      account_data: { events: [] },
      summary: {},
      unread_notifications: { highlight_count: 0, notification_count: 0 },
    };
  }

  /**
   * Stripped state for invites (a few queries for any number of rooms): the room description,
   * the inviter's member event, and the invite itself.
   */
  async inviteStates(ms: readonly MembershipRecord[]): Promise<Map<string, StrippedEvent[]>> {
    const rooms = this.deps.rooms;
    const invites = new Map((await rooms.getEvents(ms.map((m) => m.eventId))).map((e) => [e.eventId, e]));
    const senders = ms.flatMap((m) => {
      const inv = invites.get(m.eventId);
      return inv ? [{ roomId: m.roomId, userId: inv.sender }] : [];
    });
    const state = await rooms.getStateOfRooms(
      ms.map((m) => m.roomId),
      INVITE_STATE_TYPES,
      senders,
    );
    const byRoom = new Map<string, StrippedEvent[]>();
    const inviteOf = new Map<string, string>();
    for (const m of ms) {
      byRoom.set(m.roomId, []);
      inviteOf.set(m.roomId, m.eventId);
    }
    for (const e of state) {
      if (e.eventId === inviteOf.get(e.roomId)) continue;
      byRoom.get(e.roomId)?.push(strip(e));
    }
    for (const m of ms) {
      const inv = invites.get(m.eventId);
      if (inv) byRoom.get(m.roomId)?.push(strip(inv));
    }
    return byRoom;
  }
}
