/** Account data: `user/{userId}/account_data/{type}` and the per-room form. */
import { getAccountData, getRoomAccountData, setAccountData, setRoomAccountData } from "@beckon/protocol";
import type { HttpContext } from "../context.js";

export function registerAccountDataRoutes(ctx: HttpContext): void {
  const { router, accountData } = ctx;
  router.add(getAccountData, ({ params, auth }) => accountData.get(auth.userId, params.userId ?? "", "", params.type ?? ""));
  router.add(setAccountData, async ({ params, auth, body }) => {
    await accountData.set(auth.userId, params.userId ?? "", "", params.type ?? "", body);
    return {};
  });
  router.add(getRoomAccountData, ({ params, auth }) => accountData.get(auth.userId, params.userId ?? "", params.roomId ?? "", params.type ?? ""));
  router.add(setRoomAccountData, async ({ params, auth, body }) => {
    await accountData.set(auth.userId, params.userId ?? "", params.roomId ?? "", params.type ?? "", body);
    return {};
  });
}
