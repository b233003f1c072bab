/** Discovery, accounts and terms (https://spec.matrix.org/v1.18/identity-service-api/#authentication). */
import { isAccount, isAcceptTerms, isGetTerms, isLogout, isRegister, isStatus, isVersions } from "@beckon/protocol";
import { logout, registerAccount } from "../domain/accounts.js";
import { acceptTerms, termsResponse } from "../domain/terms.js";
import { principal } from "./auth.js";
import type { Router } from "@beckon/server-kit";
import type { MaybePrincipal } from "./auth.js";
import type { RouteDeps } from "./routes.js";

export const SUPPORTED_VERSIONS = ["v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12", "v1.13", "v1.14", "v1.15", "v1.16", "v1.17", "v1.18"];

export function registerAccountRoutes(router: Router<MaybePrincipal>, { ctx }: RouteDeps): void {
  const statusBody = {};
  router.add(isVersions, () => ({ versions: SUPPORTED_VERSIONS }));
  router.add(isStatus, () => statusBody);

  router.add(isRegister, ({ body, request }) => {
    ctx.limits.check("register.ip", request.ip);
    return registerAccount(ctx, body);
  });
  router.add(isAccount, ({ auth }) => ({ user_id: principal(auth).userId }));
  router.add(isLogout, async ({ auth }) => {
    await logout(ctx, principal(auth));
    return {};
  });

  // terms
  const terms = termsResponse(ctx.settings.terms);
  router.add(isGetTerms, () => terms);
  router.add(isAcceptTerms, async ({ auth, body }) => {
    await acceptTerms(ctx, principal(auth), body.user_accepts);
    return {};
  });
}
