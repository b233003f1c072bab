/** Hashed lookups (https://spec.matrix.org/v1.18/identity-service-api/#lookup). */
import { isHashDetails, isLookup } from "@beckon/protocol";
import { hashDetails, lookup } from "../domain/lookup.js";
import type { Router } from "@beckon/server-kit";
import type { MaybePrincipal } from "./auth.js";
import type { RouteDeps } from "./routes.js";

export function registerLookupRoutes(router: Router<MaybePrincipal>, { ctx, pepper }: RouteDeps): void {
  router.add(isHashDetails, () => hashDetails(ctx, pepper));
  router.add(isLookup, ({ body }) => lookup(ctx, pepper, body));
}
