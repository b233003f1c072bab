/**
 * The room core as the 3PID module sees it (`contracts.ts`): `RoomOps`, `ProfileOps`,
 * `AccountOps` over our storage and event path.
 */
import { MatrixError, stateKeyId, type PDU } from "@beckon/protocol";
import type { AccountOps, InviteRoomDetails, Membership as MembershipValue, NewEvent, ProfileOps, RoomOps, StoredEvent } from "./contracts.js";
import type { Accounts } from "./accounts.js";
import { powerLevelsFromState } from "./power-levels.js";
import { asRoomVersion } from "./room-events.js";
import type { Rooms } from "./rooms.js";
import type { EventRecord, RoomWriteTx } from "../storage/index.js";

function toStored(e: EventRecord): StoredEvent {
  const out: StoredEvent = {
    event_id: e.eventId,
    room_id: e.roomId,
    type: e.type,
    sender: e.sender,
    content: e.pdu.content,
    origin_server_ts: e.originServerTs,
  };
  if (e.stateKey !== undefined) out.state_key = e.stateKey;
  return out;
}

const DETAIL_KEYS = ["m.room.canonical_alias", "m.room.avatar", "m.room.join_rules", "m.room.name", "m.room.create"].map((type) => ({ type, stateKey: "" }));

function inviteDetails(s: Map<string, EventRecord>): InviteRoomDetails {
  const c = (t: string) => s.get(stateKeyId(t, ""))?.pdu.content ?? {};
  const out: InviteRoomDetails = {};
  const alias = c("m.room.canonical_alias").alias;
  if (typeof alias === "string") out.room_alias = alias;
  const avatar = c("m.room.avatar").url;
  if (typeof avatar === "string") out.room_avatar_url = avatar;
  const jr = c("m.room.join_rules").join_rule;
  if (typeof jr === "string") out.room_join_rules = jr;
  const name = c("m.room.name").name;
  if (typeof name === "string") out.room_name = name;
  const type = c("m.room.create").type;
  if (typeof type === "string") out.room_type = type;
  return out;
}

export function createRoomOps(rooms: Rooms): RoomOps {
  const store = rooms.deps.rooms;
  return {
    async getRoomVersion(roomId) {
      return (await store.getRoom(roomId))?.roomVersion;
    },
    async getStateEvent(roomId, type, stateKey) {
      const m = await store.getStateEvents(roomId, [{ type, stateKey }]);
      const e = m.get(stateKeyId(type, stateKey));
      return e ? toStored(e) : undefined;
    },
    async getMembership(roomId, userId) {
      return (await store.getMembership(roomId, userId))?.membership as MembershipValue | undefined;
    },
    async checkInviteAndDetails(roomId, sender) {
      const room = await rooms.requireRoom(roomId);
      // The power levels and the sender's membership decide; DETAIL_KEYS (the create event among
      // them) give the details.
      const state = await store.getStateEventsAt(roomId, room.latestEventId, [{ type: "m.room.power_levels", stateKey: "" }, { type: "m.room.member", stateKey: sender }, ...DETAIL_KEYS]);
      if (state.get(stateKeyId("m.room.member", sender))?.pdu.content.membership !== "join") {
        throw new MatrixError("M_FORBIDDEN", `${sender} is not in the room`, 403);
      }
      const map = new Map<string, PDU>();
      for (const [k, e] of state) map.set(k, e.pdu);
      const pl = powerLevelsFromState(map, asRoomVersion(room.roomVersion));
      if (pl.userLevel(sender) < pl.invite) throw new MatrixError("M_FORBIDDEN", "You don't have permission to invite users", 403);
      return inviteDetails(state);
    },
    async sendEvent(ev: NewEvent) {
      const r = await rooms.deps.events.send(ev.roomId, {
        type: ev.type,
        sender: ev.sender,
        content: ev.content,
        ...(ev.stateKey !== undefined ? { stateKey: ev.stateKey } : {}),
      }, {
        precheck: (state) => {
          if (ev.keepCurrentIf && ev.stateKey !== undefined) {
            const cur = state.get(stateKeyId(ev.type, ev.stateKey));
            if (cur && ev.keepCurrentIf(cur.pdu.content)) return cur.eventId;
          }
          // An ordinary invite of someone already invited is a no-op (issue 9).
          if (ev.type !== "m.room.member" || ev.stateKey === undefined || ev.content.membership !== "invite" || ev.content.third_party_invite !== undefined) return undefined;
          const cur = state.get(stateKeyId("m.room.member", ev.stateKey));
          return cur?.pdu.content.membership === "invite" ? cur.eventId : undefined;
        },
        ...(ev.inTransaction ? { inTransaction: (tx: RoomWriteTx) => ev.inTransaction!(tx.db) } : {}),
      });
      return { eventId: r.eventId };
    },
  };
}

export function createProfileOps(accounts: Accounts): ProfileOps {
  return {
    async getProfile(userId) {
      const u = await accounts.getUser(userId);
      const out: { displayname?: string; avatar_url?: string } = {};
      if (u?.displayname) out.displayname = u.displayname;
      if (u?.avatarUrl) out.avatar_url = u.avatarUrl;
      return out;
    },
  };
}

export function createAccountOps(accounts: Accounts): AccountOps {
  return {
    async userExists(userId) {
      const u = await accounts.getUser(userId);
      return u !== undefined && !u.deactivated;
    },
  };
}
