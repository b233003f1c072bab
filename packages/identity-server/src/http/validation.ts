/** 3PID validation sessions: email (and development msisdn). */
import { isMatrixError, isEmailRequestToken, isEmailSubmitToken, isEmailSubmitTokenGet, isMsisdnRequestToken, isMsisdnSubmitToken } from "@beckon/protocol";
import { HANDLED } from "@beckon/server-kit";
import { requestEmailToken, requestMsisdnToken, submitToken } from "../domain/validation.js";
import { validationPage } from "./pages.js";
import type { Router } from "@beckon/server-kit";
import type { MaybePrincipal } from "./auth.js";
import type { RouteDeps } from "./routes.js";

export function registerValidationRoutes(router: Router<MaybePrincipal>, { ctx }: RouteDeps): void {
  router.add(isEmailRequestToken, ({ body, request }) => requestEmailToken(ctx, body, request.ip));
  router.add(isEmailSubmitToken, async ({ body }) => {
    await submitToken(ctx, body, "email");
    return { success: true };
  });
  // NOTSPEC (DECISIONS): the mail link needs no token; a failure is an HTML page with the error's status.
  router.add(isEmailSubmitTokenGet, async ({ query, reply }): Promise<typeof HANDLED> => {
    try {
      const session = await submitToken(ctx, { sid: query.sid ?? "", client_secret: query.client_secret ?? "", token: query.token ?? "" }, "email");
      if (session.nextLink) {
        await reply.code(302).header("location", session.nextLink).send();
        return HANDLED;
      }
      await reply.code(200).type("text/html; charset=utf-8").send(validationPage(true, "Your email address has been verified. You can close this page and return to your Matrix client."));
    } catch (e) {
      if (!isMatrixError(e)) throw e;
      await reply.code(e.status).type("text/html; charset=utf-8").send(validationPage(false, e.message));
    }
    return HANDLED;
  });
  router.add(isMsisdnRequestToken, ({ body, request }) => requestMsisdnToken(ctx, body, request.ip));
  router.add(isMsisdnSubmitToken, async ({ body }) => {
    await submitToken(ctx, body, "msisdn");
    return { success: true };
  });
}
