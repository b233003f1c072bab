/** store-invite and sign-ed25519 (https://spec.matrix.org/v1.18/identity-service-api/#invitation-storage). */
import { MatrixError, isSignEd25519, isStoreInvite, isValidUserId } from "@beckon/protocol";
import { signEd25519, storeInvite } from "../domain/invites.js";
import { principal } from "./auth.js";
import type { Router } from "@beckon/server-kit";
import type { MaybePrincipal } from "./auth.js";
import type { RouteDeps } from "./routes.js";

export function registerInviteRoutes(router: Router<MaybePrincipal>, { ctx }: RouteDeps): void {
  router.add(isStoreInvite, ({ auth, body }) => storeInvite(ctx, principal(auth), body));
  router.add(isSignEd25519, ({ body, query }) => {
    // NOTSPEC (DECISIONS): no token; parameters from the query string or the body.
    const mxid = body.mxid ?? query.mxid;
    const token = body.token ?? query.token;
    const privateKey = body.private_key ?? query.private_key;
    if (mxid === undefined || token === undefined || privateKey === undefined) {
      throw new MatrixError("M_MISSING_PARAM", "mxid, token and private_key are required", 400);
    }
    if (!isValidUserId(mxid)) throw new MatrixError("M_INVALID_PARAM", "mxid is not a user ID", 400);
    return signEd25519(ctx, { mxid, token, private_key: privateKey });
  });
}
