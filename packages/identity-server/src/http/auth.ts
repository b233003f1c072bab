/**
 * Identity-server authentication: `Authorization: Bearer <token>` or `?access_token=`
 * (Synapse sends the latter for hash_details). Missing or unknown → 401 `M_UNAUTHORIZED`;
 * with terms configured, `identity` endpoints answer 403 `M_TERMS_NOT_SIGNED` until the
 * account has accepted every current policy.
 */
import type { FastifyRequest } from "fastify";
import { MatrixError, type UserId } from "@beckon/protocol";
import type { Authenticator } from "@beckon/server-kit";
import type { Principal } from "../domain/accounts.js";
import type { DomainContext } from "../domain/context.js";

export type MaybePrincipal = Principal | undefined;

/** The access token of a request, if it carries one. */
export function accessToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h === "string") {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (m?.[1]) return m[1];
  }
  const q = req.query as Record<string, unknown> | undefined;
  const t = q?.access_token;
  return typeof t === "string" && t !== "" ? t : undefined;
}

export function identityAuthenticators(
  ctx: DomainContext,
  termsVersion: string | undefined,
): Record<"identity" | "identity-no-terms" | "server-or-session", Authenticator<MaybePrincipal>> {
  const lookUp = async (req: FastifyRequest, checkTerms: boolean): Promise<Principal> => {
    const token = accessToken(req);
    if (token === undefined) throw new MatrixError("M_UNAUTHORIZED", "Unauthorized", 401);
    const owner = await ctx.stores.accounts.tokenOwner(token);
    if (!owner) throw new MatrixError("M_UNAUTHORIZED", "Unauthorized", 401);
    if (checkTerms && termsVersion !== undefined && owner.consentVersion !== termsVersion) {
      throw new MatrixError("M_TERMS_NOT_SIGNED", "Terms not signed", 403);
    }
    return { userId: owner.userId as UserId, token };
  };
  return {
    identity: (req) => lookUp(req, true),
    "identity-no-terms": (req) => lookUp(req, false),
    // 3pid/unbind decides in its handler (session in the body, or X-Matrix).
    "server-or-session": async () => undefined,
  };
}

/** The principal of an authenticated route (the router guarantees it for `identity*` kinds). */
export function principal(p: MaybePrincipal): Principal {
  if (!p) throw new MatrixError("M_UNAUTHORIZED", "Unauthorized", 401);
  return p;
}
