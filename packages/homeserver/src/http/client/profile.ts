/** Profiles: `GET profile/{userId}` (+ displayname, avatar_url), `PUT` for one's own. */
import { MatrixError, getAvatarUrl, getDisplayName, getProfile, setAvatarUrl, setDisplayName } from "@beckon/protocol";
import type { HttpContext } from "../context.js";

export function registerProfileRoutes(ctx: HttpContext): void {
  const { router, accounts } = ctx;
  const load = async (userId: string) => {
    const u = await accounts.getUser(userId);
    if (!u || u.deactivated) throw new MatrixError("M_NOT_FOUND", "Profile was not found", 404);
    return u;
  };
  const profileOut = (u: { displayname: string | null; avatarUrl: string | null }) => {
    const out: { displayname?: string; avatar_url?: string } = {};
    if (u.displayname !== null) out.displayname = u.displayname;
    if (u.avatarUrl !== null) out.avatar_url = u.avatarUrl;
    return out;
  };
  router.add(getProfile, async ({ params }) => profileOut(await load(params.userId ?? "")));
  router.add(getDisplayName, async ({ params }) => {
    const u = await load(params.userId ?? "");
    return u.displayname !== null ? { displayname: u.displayname } : {};
  });
  router.add(getAvatarUrl, async ({ params }) => {
    const u = await load(params.userId ?? "");
    return u.avatarUrl !== null ? { avatar_url: u.avatarUrl } : {};
  });
  const own = (userId: string | undefined, auth: { userId: string }) => {
    if (userId !== auth.userId) throw new MatrixError("M_FORBIDDEN", "Cannot set another user's profile", 403);
  };
  /** Profile changes show in the user's joined rooms as new member events (as Synapse does). */
  const propagate = async (userId: string) => {
    const u = await load(userId);
    for (const roomId of await ctx.rooms.joinedRooms(userId)) {
      const content: Record<string, unknown> = { membership: "join" };
      if (u.displayname !== null) content.displayname = u.displayname;
      if (u.avatarUrl !== null) content.avatar_url = u.avatarUrl;
      await ctx.rooms.deps.events.send(roomId, { type: "m.room.member", stateKey: userId, sender: userId, content }, { dedupeState: true }).catch(() => undefined);
    }
  };
  router.add(setDisplayName, async ({ params, auth, body }) => {
    own(params.userId, auth);
    await load(auth.userId);
    await accounts.setProfile(auth.userId, { displayname: body.displayname ?? null });
    await propagate(auth.userId);
    return {};
  });
  router.add(setAvatarUrl, async ({ params, auth, body }) => {
    own(params.userId, auth);
    await load(auth.userId);
    await accounts.setProfile(auth.userId, { avatarUrl: body.avatar_url ?? null });
    await propagate(auth.userId);
    return {};
  });
}
