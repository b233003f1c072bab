/** Membership: invite (both forms), join (by ID or alias, `third_party_signed`), leave, forget, kick, ban, unban. */
import { MatrixError, ban, forget, invite, isInvite3pidRequest, joinRoom, joinRoomIdOrAlias, kick, leave, unban } from "@beckon/protocol";
import type { HttpContext } from "../context.js";

/** Body keys that are not member-event content. */
const NOT_CONTENT = new Set(["third_party_signed", "reason", "membership"]);

export function registerMembershipRoutes(ctx: HttpContext): void {
  const { router, membership, rooms } = ctx;
  router.add(invite, async ({ params, auth, body }) => {
    const roomId = params.roomId ?? "";
    if (isInvite3pidRequest(body)) {
      if (!ctx.threepid) throw new MatrixError("M_UNKNOWN", "Third-party invites are not available", 500);
      await rooms.requireRoom(roomId);
      ctx.limit("third_party_invites", auth.userId);
      await ctx.threepid.inviteByThreepid(roomId, auth.userId, body);
      return {};
    }
    await membership.invite(roomId, auth.userId, body.user_id, { reason: body.reason });
    return {};
  });
  const join = async (roomIdOrAlias: string, userId: string, body: Record<string, unknown>) => {
    const extra: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(body)) if (!NOT_CONTENT.has(k)) extra[k] = val;
    const roomId = await membership.join(roomIdOrAlias, userId, {
      reason: typeof body.reason === "string" ? body.reason : undefined,
      extra,
      thirdPartySigned: body.third_party_signed,
    });
    return { room_id: roomId as never };
  };
  router.add(joinRoomIdOrAlias, ({ params, auth, body }) => join(params.roomIdOrAlias ?? "", auth.userId, body));
  router.add(joinRoom, ({ params, auth, body }) => join(params.roomId ?? "", auth.userId, body));
  router.add(leave, async ({ params, auth, body }) => {
    await membership.leave(params.roomId ?? "", auth.userId, body.reason);
    return {};
  });
  router.add(forget, async ({ params, auth }) => {
    await membership.forget(params.roomId ?? "", auth.userId);
    return {};
  });
  router.add(kick, async ({ params, auth, body }) => {
    await membership.kick(params.roomId ?? "", auth.userId, body.user_id, body.reason);
    return {};
  });
  router.add(ban, async ({ params, auth, body }) => {
    await membership.ban(params.roomId ?? "", auth.userId, body.user_id, body.reason);
    return {};
  });
  router.add(unban, async ({ params, auth, body }) => {
    await membership.unban(params.roomId ?? "", auth.userId, body.user_id, body.reason);
    return {};
  });
}
