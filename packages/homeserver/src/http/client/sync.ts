/** `GET sync`. */
import { sync } from "@beckon/protocol";
import type { HttpContext } from "../context.js";

export function registerSyncRoutes(ctx: HttpContext): void {
  ctx.router.add(sync, async ({ auth, query }) => (await ctx.sync.sync(auth, query)) as never);
}
