/**
 * The identity server's routes, registered from the protocol's endpoint descriptors
 * (`@beckon/protocol` endpoints/identity.ts). Handlers stay thin: parse, one domain call, answer.
 */
import {
  MatrixError,
  isMatrixError,
  isAccount,
  isAcceptTerms,
  isBind,
  isEmailRequestToken,
  isEmailSubmitToken,
  isEmailSubmitTokenGet,
  isEphemeralPubkeyIsValid,
  isGetTerms,
  isGetValidated3pid,
  isHashDetails,
  isLogout,
  isLookup,
  isMsisdnRequestToken,
  isMsisdnSubmitToken,
  isPubkey,
  isPubkeyIsValid,
  isRegister,
  isSignEd25519,
  isStatus,
  isStoreInvite,
  isUnbind,
  isVersions,
  isValidUserId,
} from "@beckon/protocol";
import { HANDLED, type Router } from "@beckon/server-kit";
import type { DomainContext } from "../domain/context.js";
import { logout, registerAccount } from "../domain/accounts.js";
import { acceptTerms, termsResponse } from "../domain/terms.js";
import { hashDetails, lookup, type PepperCache } from "../domain/lookup.js";
import { getValidated3pid, requestEmailToken, requestMsisdnToken, submitToken } from "../domain/validation.js";
import { bind, unbind, verifyHomeserverUnbind } from "../domain/associations.js";
import { ephemeralKeyIsValid, signEd25519, storeInvite } from "../domain/invites.js";
import type { ServerKeyCache } from "../domain/server-keys.js";
import { principal, type MaybePrincipal } from "./auth.js";
import { validationPage } from "./pages.js";

export const SUPPORTED_VERSIONS = ["v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12", "v1.13", "v1.14", "v1.15", "v1.16", "v1.17", "v1.18"];

export interface RouteDeps {
  ctx: DomainContext;
  pepper: PepperCache;
  serverKeys: ServerKeyCache;
}

export function registerIdentityRoutes(router: Router<MaybePrincipal>, deps: RouteDeps): void {
  const { ctx, pepper, serverKeys } = deps;
  const statusBody = {};

  // ── discovery
  router.add(isVersions, () => ({ versions: SUPPORTED_VERSIONS }));
  router.add(isStatus, () => statusBody);

  // ── account
  router.add(isRegister, ({ body, request }) => {
    ctx.limits.check("register.ip", request.ip);
    return registerAccount(ctx, body);
  });
  router.add(isAccount, ({ auth }) => ({ user_id: principal(auth).userId }));
  router.add(isLogout, async ({ auth }) => {
    await logout(ctx, principal(auth));
    return {};
  });

  // ── terms
  const terms = termsResponse(ctx.settings.terms);
  router.add(isGetTerms, () => terms);
  router.add(isAcceptTerms, async ({ auth, body }) => {
    await acceptTerms(ctx, principal(auth), body.user_accepts);
    return {};
  });

  // ── lookup
  router.add(isHashDetails, () => hashDetails(ctx, pepper));
  router.add(isLookup, ({ body }) => lookup(ctx, pepper, body));

  // ── validation
  router.add(isEmailRequestToken, ({ body, request }) => requestEmailToken(ctx, body, request.ip));
  router.add(isEmailSubmitToken, async ({ body }) => {
    await submitToken(ctx, body, "email");
    return { success: true };
  });
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

  // ── associations
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

  // ── invitations
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

  // ── keys
  router.add(isPubkey, ({ params }) => {
    if (params.keyId !== ctx.keys.keyId) throw new MatrixError("M_NOT_FOUND", "The public key was not found", 404);
    return { public_key: ctx.keys.publicKey };
  });
  router.add(isPubkeyIsValid, ({ query }) => ({ valid: ctx.keys.isLongTermKey(query.public_key ?? "") }));
  router.add(isEphemeralPubkeyIsValid, async ({ query }) => ({ valid: await ephemeralKeyIsValid(ctx, query.public_key ?? "") }));
}
