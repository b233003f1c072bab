/**
 * OpenID tokens (https://spec.matrix.org/v1.18/client-server-api/#openid): a client asks for one
 * (`POST user/{userId}/openid/request_token`) and hands it to an identity server, which checks it
 * with `GET /_matrix/federation/v1/openid/userinfo?access_token=` → `{sub}`. Tokens are
 * persisted with their expiry (1 h by default, as Synapse) and good for nothing else.
 */
import { randomBytes } from "node:crypto";
import { MatrixError, encodeBase64Url, type OpenIdToken } from "@beckon/protocol";
import type { ThreepidServices } from "./threepid-services.js";

const DEFAULT_LIFETIME_MS = 3_600_000;

/** Issues a token for `userId`; only the user themself may ask (403 otherwise, as Synapse). */
export async function requestOpenidToken(s: ThreepidServices, caller: string, userId: string): Promise<OpenIdToken> {
  if (caller !== userId) throw new MatrixError("M_FORBIDDEN", "Cannot request tokens for other users.", 403);
  const lifetime = s.deps.config.openidTokenLifetimeMs ?? DEFAULT_LIFETIME_MS;
  const now = s.deps.clock.now();
  const token = encodeBase64Url(new Uint8Array(randomBytes(24)));
  await s.store.insertOpenidToken({ token, user_id: userId, valid_until_ms: now + lifetime });
  // Expired tokens are dead already (the lookup checks expiry); clearing them is housekeeping.
  if (Math.random() < 0.01) {
    s.store.purgeOpenidTokens(now).catch((e: unknown) => s.deps.logger.warn({ err: e }, "openid: purge failed"));
  }
  return { access_token: token, token_type: "Bearer", matrix_server_name: s.deps.serverName, expires_in: Math.floor(lifetime / 1000) };
}

/** The user a live token belongs to; 401 `M_UNKNOWN_TOKEN` for a missing, unknown or expired one. */
export async function openidUserinfo(s: ThreepidServices, token: string | undefined): Promise<{ sub: string }> {
  if (token === undefined || token === "" || token.length > 1024) {
    throw new MatrixError("M_UNKNOWN_TOKEN", "Access token unknown or expired", 401);
  }
  const userId = await s.store.openidUser(token, s.deps.clock.now());
  if (userId === undefined || !(await s.deps.accounts.userExists(userId))) {
    throw new MatrixError("M_UNKNOWN_TOKEN", "Access token unknown or expired", 401);
  }
  return { sub: userId };
}
