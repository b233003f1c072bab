/**
 * The identity server's routes, registered from the protocol's endpoint descriptors
 * (`@beckon/protocol` endpoints/identity.ts), one file per endpoint family. Handlers stay thin:
 * parse, one domain call, answer.
 */
import type { Router } from "@beckon/server-kit";
import type { DomainContext } from "../domain/context.js";
import type { PepperCache } from "../domain/lookup.js";
import type { ServerKeyCache } from "../domain/server-keys.js";
import type { MaybePrincipal } from "./auth.js";
import { registerAccountRoutes } from "./account.js";
import { registerLookupRoutes } from "./lookup.js";
import { registerValidationRoutes } from "./validation.js";
import { registerAssociationRoutes } from "./associations.js";
import { registerInviteRoutes } from "./invites.js";
import { registerKeyRoutes } from "./keys.js";

export { SUPPORTED_VERSIONS } from "./account.js";

export interface RouteDeps {
  ctx: DomainContext;
  pepper: PepperCache;
  serverKeys: ServerKeyCache;
}

export function registerIdentityRoutes(router: Router<MaybePrincipal>, deps: RouteDeps): void {
  registerAccountRoutes(router, deps);
  registerLookupRoutes(router, deps);
  registerValidationRoutes(router, deps);
  registerAssociationRoutes(router, deps);
  registerInviteRoutes(router, deps);
  registerKeyRoutes(router, deps);
}
