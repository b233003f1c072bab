/**
 * Client-Server access-token authentication: `Authorization: Bearer <token>` or the
 * (deprecated, still used) `access_token` query parameter. Missing → 401 `M_MISSING_TOKEN`,
 * unknown → 401 `M_UNKNOWN_TOKEN`.
 */
import type { FastifyRequest } from "fastify";
import { MatrixError } from "@beckon/protocol";
import type { Accounts, Principal } from "../domain/accounts.js";

/** The access token of a request, if any. */
export function accessTokenOf(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h === "string") {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (m) return m[1];
  }
  const q = req.query as Record<string, unknown> | undefined;
  const t = q?.access_token;
  return typeof t === "string" && t !== "" ? t : undefined;
}

export function userAuthenticator(accounts: Accounts): (req: FastifyRequest) => Promise<Principal> {
  return async (req) => {
    const token = accessTokenOf(req);
    if (!token) throw new MatrixError("M_MISSING_TOKEN", "Missing access token.", 401);
    return accounts.authenticate(token);
  };
}
