/** Session status, bind and unbind (https://spec.matrix.org/v1.18/identity-service-api/#establishing-associations). */
import { MatrixError, isBind, isGetValidated3pid, isUnbind } from "@beckon/protocol";
import { getValidated3pid } from "../domain/validation.js";
import { bind, unbind, verifyHomeserverUnbind } from "../domain/associations.js";
import { principal } from "./auth.js";
import type { Router } from "@beckon/server-kit";
import type { MaybePrincipal } from "./auth.js";
import type { RouteDeps } from "./routes.js";

export function registerAssociationRoutes(router: Router<MaybePrincipal>, { ctx, serverKeys }: RouteDeps): void {
  router.add(isGetValidated3pid, ({ query }) => getValidated3pid(ctx, query.sid ?? "", query.client_secret ?? ""));
  router.add(isBind, ({ auth, body }) => bind(ctx, principal(auth), body));
  router.add(isUnbind, async ({ body, request }) => {
    const authorization = request.headers.authorization;
    if (typeof authorization === "string" && /^\s*X-Matrix\s/i.test(authorization)) {
      const origin = await verifyHomeserverUnbind(ctx, serverKeys, { method: request.method, uri: request.url, content: request.body, authorization, mxid: body.mxid });
      await unbind(ctx, body, { kind: "server", origin });
    } else if (body.sid !== undefined && body.client_secret !== undefined) {
      await unbind(ctx, body, { kind: "session", sid: body.sid, clientSecret: body.client_secret });
    } else {
      throw new MatrixError("M_UNAUTHORIZED", "Unbind needs sid and client_secret, or the homeserver's X-Matrix signature", 401);
    }
    return {};
  });
}
