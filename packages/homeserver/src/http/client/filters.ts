/**
 * Sync filters (`user/{userId}/filter`) and push rules (`pushrules/`) — what matrix-js-sdk's
 * `startClient` asks for before its first `/sync`. Filters are stored under a content hash
 * (the same filter gets the same ID). Push rules: no server-side notifications yet, so the
 * rule set is empty.
 */
import { createHash } from "node:crypto";
import { MatrixError, encodeCanonicalJson } from "@beckon/protocol";
import type { HttpContext } from "../context.js";
import { createFilter, getFilter, getPushRules } from "../descriptors-local.js";

export function registerFilterRoutes(ctx: HttpContext): void {
  const { router, accounts } = ctx;
  const own = (userId: string | undefined, caller: string) => {
    if (userId !== caller) throw new MatrixError("M_FORBIDDEN", "Cannot use another user's filters", 403);
  };
  router.add(createFilter, async ({ params, auth, body }) => {
    own(params.userId, auth.userId);
    const json = encodeCanonicalJson(body);
    const filterId = createHash("sha256").update(json).digest("base64url").slice(0, 16);
    await accounts.store.putFilter(auth.userId, filterId, json);
    return { filter_id: filterId };
  });
  router.add(getFilter, async ({ params, auth }) => {
    own(params.userId, auth.userId);
    const json = await accounts.store.getFilter(auth.userId, params.filterId ?? "");
    if (json === undefined) throw new MatrixError("M_NOT_FOUND", "No such filter", 404);
    return JSON.parse(json) as Record<string, unknown>;
  });
  // NOTSPEC: the spec defines default (".m.rule.*") push rules; we send no push notifications
  // yet, so clients get an empty rule set (matrix-js-sdk only needs the call to succeed).
  router.add(getPushRules, () => ({ global: { override: [], content: [], room: [], sender: [], underride: [] } }));
}
