/**
 * Accounts (https://spec.matrix.org/v1.18/identity-service-api/#authentication):
 * register with an OpenID token checked against the homeserver's `openid/userinfo`.
 */
import { MatrixError, isValidServerName, isValidUserId, idServerName, type UserId } from "@beckon/protocol";
import { randomString, type DomainContext } from "./context.js";
import { HomeserverUnreachable } from "./homeserver-client.js";

export interface Principal {
  userId: UserId;
  token: string;
}

/** `POST account/register`: verifies the OpenID token, creates the account if new, issues a token. */
export async function registerAccount(
  ctx: DomainContext,
  openid: { access_token: string; matrix_server_name: string },
): Promise<{ token: string; access_token: string }> {
  const serverName = openid.matrix_server_name.toLowerCase();
  if (!isValidServerName(serverName)) throw new MatrixError("M_INVALID_PARAM", "matrix_server_name is not a valid server name", 400);
  const allow = ctx.settings.homeserverAllowList;
  if (allow.length > 0 && !allow.includes(serverName)) throw new MatrixError("M_UNAUTHORIZED", "This homeserver is not allowed to register", 403);
  let res;
  try {
    res = await ctx.homeservers.request(serverName, `/_matrix/federation/v1/openid/userinfo?access_token=${encodeURIComponent(openid.access_token)}`, {
      method: "GET",
    });
  } catch (e) {
    const why = e instanceof HomeserverUnreachable ? e.message : "request failed";
    ctx.logger.warn({ serverName, err: why }, "openid userinfo unreachable");
    // NOTSPEC: Sydent answers 500 M_UNKNOWN; DECISIONS ("no 500": a peer really unreachable is a 502).
    throw new MatrixError("M_UNKNOWN", `Unable to contact the homeserver ${serverName} to check the OpenID token`, 502);
  }
  if (res.status === 401 || res.status === 403 || res.status === 404) throw new MatrixError("M_UNAUTHORIZED", "The homeserver did not accept the OpenID token", 401);
  const body = res.json();
  if (res.status !== 200 || typeof body !== "object" || body === null) {
    throw new MatrixError("M_UNKNOWN", `The homeserver answered ${res.status} without valid JSON for the OpenID token`, 502);
  }
  const sub = (body as { sub?: unknown }).sub;
  if (typeof sub !== "string" || !isValidUserId(sub)) throw new MatrixError("M_UNKNOWN", "The homeserver's userinfo has no valid sub", 502);
  if (idServerName(sub).toLowerCase() !== serverName) {
    throw new MatrixError("M_UNAUTHORIZED", "The OpenID token belongs to a user of another server", 401);
  }
  const token = randomString(ctx, 64);
  await ctx.stores.accounts.addToken(sub, token, ctx.clock.now());
  ctx.logger.info({ userId: sub }, "account registered");
  return { token, access_token: token };
}

/** `POST account/logout`. */
export async function logout(ctx: DomainContext, principal: Principal): Promise<void> {
  await ctx.stores.accounts.deleteToken(principal.token);
}
