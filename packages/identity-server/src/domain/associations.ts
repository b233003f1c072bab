/**
 * Bindings (https://spec.matrix.org/v1.18/identity-service-api/#post_matrixidentityv23pidbind):
 * `bind` stores the association and, in the same transaction, queues an onbind delivery for
 * every pending unexpired invite of the address; the reply does not wait for delivery.
 */
import { MatrixError, idServerName, isValidUserId, parseXMatrixHeader, verifyXMatrixRequest, type UserId } from "@beckon/protocol";
import { DELIVERY_CHANNEL, type DomainContext } from "./context.js";
import { hashAddress, PEPPER_SETTING } from "./lookup.js";
import { canonicalEmail } from "./threepid.js";
import { validatedSession } from "./validation.js";
import type { Principal } from "./accounts.js";
import type { ServerKeyCache } from "./server-keys.js";

/** Associations last a century unless unbound (Sydent's `not_after`). */
export const ASSOCIATION_LIFETIME_MS = 100 * 365 * 86_400_000;

export interface SignedAssociation extends Record<string, unknown> {
  address: string;
  medium: string;
  mxid: string;
  not_before: number;
  not_after: number;
  ts: number;
  signatures: Record<string, Record<string, string>>;
}

export async function bind(ctx: DomainContext, principal: Principal, req: { sid: string; client_secret: string; mxid: string }): Promise<SignedAssociation> {
  if (req.mxid !== principal.userId) throw new MatrixError("M_UNAUTHORIZED", "mxid does not match the account's user", 403);
  const session = await validatedSession(ctx, req.sid, req.client_secret);
  const now = ctx.clock.now();
  const assoc = { medium: session.medium, address: session.address, mxid: req.mxid, ts: now, notBefore: now, notAfter: now + ASSOCIATION_LIFETIME_MS };
  const queued = await ctx.transact(async (s) => {
    const pepper = await s.settings.get(PEPPER_SETTING);
    if (pepper === undefined) throw new Error("lookup pepper not initialised");
    await s.associations.upsert(assoc, hashAddress(assoc.address, assoc.medium, pepper));
    const pending = await s.invites.pendingFor(assoc.medium, assoc.address, now);
    await s.delivery.enqueue(
      pending.map((i) => ({ mxid: req.mxid, token: i.token, medium: assoc.medium, address: assoc.address })),
      now,
    );
    return pending.length;
  });
  if (queued > 0) ctx.notifier.notify(DELIVERY_CHANNEL);
  ctx.logger.info({ medium: assoc.medium, pendingInvites: queued }, "3pid bound");
  return ctx.keys.sign({
    address: assoc.address,
    medium: assoc.medium,
    mxid: assoc.mxid,
    not_before: assoc.notBefore,
    not_after: assoc.notAfter,
    ts: assoc.ts,
  });
}

export type UnbindAuth = { kind: "session"; sid: string; clientSecret: string } | { kind: "server"; origin: string };

/** `POST 3pid/unbind`, authorised by a validated session for the same 3PID or by the mxid's homeserver. */
export async function unbind(ctx: DomainContext, req: { mxid: string; threepid: { medium: string; address: string } }, auth: UnbindAuth): Promise<void> {
  const medium = req.threepid.medium;
  const address = medium === "email" ? canonicalEmail(req.threepid.address) : req.threepid.address;
  if (auth.kind === "session") {
    const session = await validatedSession(ctx, auth.sid, auth.clientSecret);
    if (session.medium !== medium || session.address !== address) {
      throw new MatrixError("M_FORBIDDEN", "The session does not match the 3PID to unbind", 403);
    }
  } else {
    if (!isValidUserId(req.mxid) || idServerName(req.mxid as UserId) !== auth.origin) {
      throw new MatrixError("M_FORBIDDEN", "The requesting server does not host this user", 403);
    }
  }
  const removed = await ctx.stores.associations.delete(medium, address, req.mxid);
  ctx.logger.info({ medium, removed, by: auth.kind }, "3pid unbind");
}

/**
 * Verifies a homeserver's X-Matrix signature on an unbind (Synapse's `destination_is` form),
 * fetching its key from `/_matrix/key/v2/server`. Returns the origin.
 */
export async function verifyHomeserverUnbind(
  ctx: DomainContext,
  keys: ServerKeyCache,
  req: { method: string; uri: string; content: unknown; authorization: string; mxid: string },
): Promise<string> {
  // Only the mxid's own homeserver may unbind: refuse any other origin before connecting anywhere
  // (otherwise the key fetch would let callers probe arbitrary hosts).
  const claimed = parseXMatrixHeader(req.authorization);
  if (!isValidUserId(req.mxid) || idServerName(req.mxid as UserId) !== claimed.origin) {
    throw new MatrixError("M_FORBIDDEN", "The requesting server does not host this user", 403);
  }
  const auth = await verifyXMatrixRequest({
    method: req.method,
    uri: req.uri,
    content: req.content,
    authorization: req.authorization,
    ourNames: [ctx.settings.serverName, ...ctx.settings.otherNames],
    variant: "destination_is",
    getKey: (origin, keyId) => keys.get(origin, keyId),
  });
  return auth.origin;
}
