/** Public keys and their validity (https://spec.matrix.org/v1.18/identity-service-api/#key-management). */
import { MatrixError, isEphemeralPubkeyIsValid, isPubkey, isPubkeyIsValid } from "@beckon/protocol";
import { ephemeralKeyIsValid } from "../domain/invites.js";
import type { Router } from "@beckon/server-kit";
import type { MaybePrincipal } from "./auth.js";
import type { RouteDeps } from "./routes.js";

export function registerKeyRoutes(router: Router<MaybePrincipal>, { ctx }: RouteDeps): void {
  router.add(isPubkey, ({ params }) => {
    if (params.keyId !== ctx.keys.keyId) throw new MatrixError("M_NOT_FOUND", "The public key was not found", 404);
    return { public_key: ctx.keys.publicKey };
  });
  router.add(isPubkeyIsValid, ({ query }) => ({ valid: ctx.keys.isLongTermKey(query.public_key ?? "") }));
  router.add(isEphemeralPubkeyIsValid, async ({ query }) => ({ valid: await ephemeralKeyIsValid(ctx, query.public_key ?? "") }));
}
