/**
 * Membership changes (https://spec.matrix.org/v1.18/client-server-api/#room-membership):
 * invite by user ID, join (by ID or alias, with `third_party_signed`), leave, forget, kick, ban,
 * unban. Pre-checks that the auth rules do not make (inviting an invited user is a no-op,
 * kicking someone who is not there is 403) run inside the room's write transaction, so
 * concurrent requests cannot both pass them.
 */
import { MatrixError, isValidRoomAlias, isValidRoomId, stateKeyId } from "@beckon/protocol";
import { profileContent } from "./create-room.js";
import type { StateMap } from "./room-events.js";
import type { Rooms } from "./rooms.js";

/** What the 3PID module returns for a verified `third_party_signed`: the member invite to send. */
export interface ThirdPartyExchange {
  sender: string;
  stateKey: string;
  content: Record<string, unknown>;
}

export interface MembershipDeps {
  /** Throws 429 when an invite would exceed `rc_invites` (per room, per issuer, per invitee). */
  checkInviteRate?: (roomId: string, sender: string, target: string) => void;
  /** Verifies `third_party_signed` for `roomId` and `userId` (the 3PID module). */
  verifyThirdPartySigned?: (roomId: string, signed: unknown, userId: string) => Promise<ThirdPartyExchange>;
}

function membershipIn(state: StateMap, userId: string): string | undefined {
  const m = state.get(stateKeyId("m.room.member", userId))?.pdu.content.membership;
  return typeof m === "string" ? m : undefined;
}

const MEMBER = "m.room.member";

export class Membership {
  constructor(
    private readonly rooms: Rooms,
    private readonly deps: MembershipDeps = {},
  ) {}

  private requireLocalUser(userId: string): void {
    if (!this.rooms.isLocal(userId)) throw new MatrixError("M_FORBIDDEN", `Cannot act on ${userId}: federation is not enabled`, 403);
  }

  /**
   * Invite by user ID. Already invited → no new event (the existing invite's ID); joined or
   * banned → 403 `M_FORBIDDEN`.
   */
  async invite(roomId: string, sender: string, target: string, opts: { reason?: string | undefined; isDirect?: boolean } = {}): Promise<string> {
    // The room's existence is checked inside the write (one query less on this hot path).
    if (!this.rooms.isLocal(roomId)) await this.rooms.requireRoom(roomId);
    this.requireLocalUser(target);
    this.deps.checkInviteRate?.(roomId, sender, target);
    const content: Record<string, unknown> = { membership: "invite", ...(await profileContent(this.rooms, target)) };
    if (opts.reason !== undefined) content.reason = opts.reason;
    if (opts.isDirect) content.is_direct = true;
    const r = await this.rooms.deps.events.send(
      roomId,
      { type: MEMBER, stateKey: target, sender, content },
      {
        precheck: (state) => {
          if (membershipIn(state, sender) !== "join") throw new MatrixError("M_FORBIDDEN", `${sender} is not in the room`, 403);
          const cur = membershipIn(state, target);
          if (cur === "invite") return state.get(stateKeyId(MEMBER, target))!.eventId;
          if (cur === "join") throw new MatrixError("M_FORBIDDEN", `${target} is already in the room.`, 403);
          if (cur === "ban") throw new MatrixError("M_FORBIDDEN", `${target} is banned from the room`, 403);
          return undefined;
        },
      },
    );
    return r.eventId;
  }

  /** Resolves a room ID or a local alias. */
  async resolveRoom(roomIdOrAlias: string): Promise<string> {
    if (roomIdOrAlias.startsWith("#")) {
      if (!isValidRoomAlias(roomIdOrAlias)) throw new MatrixError("M_INVALID_PARAM", "Invalid room alias", 400);
      if (!this.rooms.isLocal(roomIdOrAlias)) throw new MatrixError("M_FORBIDDEN", "The alias is on another server and federation is not enabled", 403);
      const rec = await this.rooms.deps.rooms.getAlias(roomIdOrAlias);
      if (!rec) throw new MatrixError("M_NOT_FOUND", `Room alias ${roomIdOrAlias} not found`, 404);
      return rec.roomId;
    }
    if (!isValidRoomId(roomIdOrAlias)) throw new MatrixError("M_INVALID_PARAM", "Not a room ID or alias", 400);
    return roomIdOrAlias;
  }

  /** Join; with `third_party_signed`, the 3PID invite is created first (one step for the client). */
  async join(roomIdOrAlias: string, userId: string, opts: { reason?: string | undefined; extra?: Record<string, unknown>; thirdPartySigned?: unknown } = {}): Promise<string> {
    const roomId = await this.resolveRoom(roomIdOrAlias);
    await this.rooms.requireRoom(roomId);
    if (opts.thirdPartySigned !== undefined) {
      if (!this.deps.verifyThirdPartySigned) throw new MatrixError("M_FORBIDDEN", "Third-party invites are not available", 403);
      const ex = await this.deps.verifyThirdPartySigned(roomId, opts.thirdPartySigned, userId);
      if (ex.stateKey !== userId) throw new MatrixError("M_FORBIDDEN", "third_party_signed is for another user", 403);
      await this.rooms.deps.events.send(
        roomId,
        { type: MEMBER, stateKey: ex.stateKey, sender: ex.sender, content: ex.content },
        {
          precheck: (state) => {
            const cur = membershipIn(state, userId);
            // Already invited or joined: nothing to exchange (Synapse would add a duplicate invite).
            if (cur === "invite" || cur === "join") return state.get(stateKeyId(MEMBER, userId))!.eventId;
            return undefined;
          },
        },
      );
    }
    const content: Record<string, unknown> = { ...(opts.extra ?? {}), membership: "join", ...(await profileContent(this.rooms, userId)) };
    delete content.third_party_signed;
    if (opts.reason !== undefined) content.reason = opts.reason;
    await this.rooms.deps.events.send(roomId, { type: MEMBER, stateKey: userId, sender: userId, content }, { dedupeState: true });
    return roomId;
  }

  /** Leave (or reject an invite). Already left → no new event. */
  async leave(roomId: string, userId: string, reason?: string): Promise<void> {
    await this.rooms.requireRoom(roomId);
    const content: Record<string, unknown> = { membership: "leave" };
    if (reason !== undefined) content.reason = reason;
    await this.rooms.deps.events.send(
      roomId,
      { type: MEMBER, stateKey: userId, sender: userId, content },
      {
        precheck: (state) => {
          const cur = membershipIn(state, userId);
          if (cur === undefined) throw new MatrixError("M_FORBIDDEN", `User ${userId} not in room ${roomId}`, 403);
          if (cur === "leave") return state.get(stateKeyId(MEMBER, userId))!.eventId;
          return undefined;
        },
      },
    );
  }

  /** Kick: the target must be joined, invited or knocking (403 otherwise). */
  async kick(roomId: string, sender: string, target: string, reason?: string): Promise<void> {
    await this.rooms.requireRoom(roomId);
    const content: Record<string, unknown> = { membership: "leave" };
    if (reason !== undefined) content.reason = reason;
    await this.rooms.deps.events.send(
      roomId,
      { type: MEMBER, stateKey: target, sender, content },
      {
        precheck: (state) => {
          if (membershipIn(state, sender) !== "join") throw new MatrixError("M_FORBIDDEN", `${sender} is not in the room`, 403);
          const cur = membershipIn(state, target);
          if (cur !== "join" && cur !== "invite" && cur !== "knock") throw new MatrixError("M_FORBIDDEN", `${target} is not in the room`, 403);
          return undefined;
        },
      },
    );
  }

  async ban(roomId: string, sender: string, target: string, reason?: string): Promise<void> {
    await this.rooms.requireRoom(roomId);
    this.requireLocalUser(target);
    const content: Record<string, unknown> = { membership: "ban" };
    if (reason !== undefined) content.reason = reason;
    await this.rooms.deps.events.send(roomId, { type: MEMBER, stateKey: target, sender, content }, { dedupeState: true });
  }

  /** Unban: the target must be banned (403 otherwise). */
  async unban(roomId: string, sender: string, target: string, reason?: string): Promise<void> {
    await this.rooms.requireRoom(roomId);
    const content: Record<string, unknown> = { membership: "leave" };
    if (reason !== undefined) content.reason = reason;
    await this.rooms.deps.events.send(
      roomId,
      { type: MEMBER, stateKey: target, sender, content },
      {
        precheck: (state) => {
          if (membershipIn(state, target) !== "ban") throw new MatrixError("M_FORBIDDEN", `${target} is not banned`, 403);
          return undefined;
        },
      },
    );
  }

  /** Forget a room one has left. */
  async forget(roomId: string, userId: string): Promise<void> {
    await this.rooms.requireRoom(roomId);
    const m = await this.rooms.deps.rooms.getMembership(roomId, userId);
    if (!m) throw new MatrixError("M_NOT_FOUND", "You are not a member of this room", 404);
    if (m.membership === "join" || m.membership === "invite") throw new MatrixError("M_UNKNOWN", "User is in room", 400);
    await this.rooms.deps.rooms.setForgotten(roomId, userId);
  }
}
