/**
 * Inviting by third-party identifier (https://spec.matrix.org/v1.18/client-server-api/#third-party-invites):
 * `POST rooms/{roomId}/invite` with `{id_server, id_access_token, medium, address}` and
 * `createRoom`'s `invite_3pid`. Implements {@link ThreepidApi} from `contracts.ts`.
 *
 * Order (issue 4, issue 9, DECISIONS.md):
 * 1. the inviter may invite (before any identity-server traffic);
 * 2. `id_access_token` present, `id_server` trusted (400 before any connection);
 * 3. de-duplicate: the same (room, sender, medium, normalised address) while an earlier 3PID
 *    invite is pending (its `m.room.third_party_invite` still has content and has not become
 *    a membership) → `200 {}` and nothing else. A row with that unique key is inserted BEFORE
 *    the identity server is called and removed when anything fails, so ten parallel identical
 *    requests (in one process or several) make one `store-invite` and one event;
 * 4. `hash_details` + `lookup` → a hit is an ordinary invite of that mxid;
 * 5. a miss → `store-invite` → `m.room.third_party_invite` (state_key = token, content copied
 *    from the answer); `M_THREEPID_IN_USE` with `mxid` (bound since the lookup) → ordinary invite.
 * Any identity-server failure → the mapped Matrix error and no event.
 */
import { MatrixError, idServerName, isValidUserId, normalizeEmail, normalizeMsisdn, type UserId } from "@beckon/protocol";
import type { Kysely } from "kysely";
import type { InviteRoomContext, InviteRoomDetails, PreparedThreepidInvite, ThreepidApi, ThreepidInviteRequest } from "./contracts.js";
import { setPendingToken, type ThreepidDatabase } from "./threepid-storage.js";
import type { StoreInviteDetails } from "../identity/client.js";
import { THIRD_PARTY_INVITE, handleOnbind, inviteKeys, verifyThirdPartySigned, type ThirdPartyMemberInvite } from "./onbind.js";
import { threepidServices, type ThreepidServices } from "./threepid-services.js";
import type { ThreepidDeps } from "./threepid-deps.js";
import type { OnbindRequest } from "@beckon/protocol";

/** Dedupe-key form of an address: the one normal form of its medium. */
export function normalizeInviteAddress(medium: string, address: string): string {
  if (medium === "email") return normalizeEmail(address);
  if (medium === "msisdn") return normalizeMsisdn(address);
  return address.trim();
}

function checkRequest(req: ThreepidInviteRequest): { token: string; medium: string; address: string } {
  if (typeof req.medium !== "string" || req.medium === "") throw new MatrixError("M_MISSING_PARAM", "medium is required", 400);
  if (typeof req.address !== "string" || req.address.trim() === "") throw new MatrixError("M_MISSING_PARAM", "address is required", 400);
  if (typeof req.id_server !== "string" || req.id_server === "") throw new MatrixError("M_MISSING_PARAM", "id_server is required", 400);
  // Synapse ≥ 1.67 requires it (spec-digest §1.1).
  if (typeof req.id_access_token !== "string" || req.id_access_token === "") {
    throw new MatrixError("M_MISSING_PARAM", "id_access_token is required for 3PID invites", 400);
  }
  // It travels in an Authorization header: anything but visible ASCII could never be sent, and
  // must not look like an unreachable identity server (502).
  if (!/^[\x21-\x7e]{1,1024}$/.test(req.id_access_token)) {
    throw new MatrixError("M_INVALID_PARAM", "id_access_token is not a valid token", 400);
  }
  return { token: req.id_access_token, medium: req.medium, address: req.address.trim() };
}

/** Validates the request, checks the identity server is trusted, and looks the address up. */
export async function lookupThreepidInvite(
  s: ThreepidServices,
  req: ThreepidInviteRequest,
): Promise<{ kind: "user"; userId: string } | { kind: "unbound" }> {
  const { token, medium, address } = checkRequest(req);
  const is = s.identity.resolve(req.id_server);
  const bound = await s.identity.lookup(is, token, medium, address);
  return bound !== undefined ? { kind: "user", userId: bound } : { kind: "unbound" };
}

/** store-invite for an address the lookup did not find; no room changes. */
export async function storeThreepidInvite(s: ThreepidServices, req: ThreepidInviteRequest, ctx: InviteRoomContext): Promise<PreparedThreepidInvite> {
  const { token, medium, address } = checkRequest(req);
  const is = s.identity.resolve(req.id_server);
  let profile: { displayname?: string; avatar_url?: string } = {};
  try {
    profile = await s.deps.profiles.getProfile(ctx.sender);
  } catch {
    /* no profile: fall back to the mxid as Synapse does */
  }
  const details: StoreInviteDetails = {
    medium,
    address,
    room_id: ctx.roomId,
    sender: ctx.sender,
    room_alias: ctx.room_alias ?? "",
    room_avatar_url: ctx.room_avatar_url ?? "",
    room_join_rules: ctx.room_join_rules ?? "",
    room_name: ctx.room_name ?? "",
    sender_display_name: profile.displayname ?? ctx.sender,
    sender_avatar_url: profile.avatar_url ?? "",
  };
  if (ctx.room_type !== undefined && ctx.room_type !== "") details.room_type = ctx.room_type;
  const stored = await s.identity.storeInvite(is, token, details);
  if (stored.kind === "bound") return { kind: "user", userId: stored.mxid };
  const inv = stored.invite;
  return {
    kind: "third_party",
    token: inv.token,
    content: {
      display_name: inv.display_name,
      public_keys: inv.public_keys.map((k) => ({ public_key: k.public_key, key_validity_url: k.key_validity_url })),
      public_key: inv.public_key,
      key_validity_url: inv.key_validity_url,
    },
  };
}

/** Lookup, else store-invite; no room changes. */
export async function prepareThreepidInvite(s: ThreepidServices, req: ThreepidInviteRequest, ctx: InviteRoomContext): Promise<PreparedThreepidInvite> {
  const found = await lookupThreepidInvite(s, req);
  if (found.kind === "user") return found;
  return storeThreepidInvite(s, req, ctx);
}

/** An ordinary invite of a user the identity server named. Already invited → no event. */
async function inviteUser(s: ThreepidServices, roomId: string, sender: string, userId: string): Promise<void> {
  if (!isValidUserId(userId)) throw new MatrixError("M_UNKNOWN", "The identity server named an invalid user ID", 502);
  if (idServerName(userId as UserId) !== s.deps.serverName) {
    // DECISIONS.md: inviting a user of another server needs federation.
    throw new MatrixError("M_FORBIDDEN", "That address belongs to a user of another server, and federation is not enabled", 403);
  }
  const membership = await s.deps.rooms.getMembership(roomId, userId);
  if (membership === "invite") return;
  const content: Record<string, unknown> = { membership: "invite" };
  try {
    const p = await s.deps.profiles.getProfile(userId);
    if (p.displayname !== undefined) content.displayname = p.displayname;
    if (p.avatar_url !== undefined) content.avatar_url = p.avatar_url;
  } catch {
    /* profile is decoration only */
  }
  // A joined or banned target is refused by the auth rules (403 M_FORBIDDEN).
  await s.deps.rooms.sendEvent({ roomId, sender, type: "m.room.member", stateKey: userId, content });
}

/** Whether a third-party invite with this token is still pending in the room. */
async function stillPending(s: ThreepidServices, roomId: string, token: string): Promise<boolean> {
  const ev = await s.deps.rooms.getStateEvent(roomId, THIRD_PARTY_INVITE, token);
  return ev !== undefined && inviteKeys(ev.content).length > 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref?.();
  });
}

/** Does the work for a claimed key; releases the claim on failure. */
async function runClaimed(
  s: ThreepidServices,
  key: { room_id: string; sender: string; medium: string; address: string },
  createdTs: number,
  req: ThreepidInviteRequest,
  details: InviteRoomDetails,
): Promise<void> {
  const release = () =>
    s.store.releasePendingInvite(key, { token: null, created_ts: createdTs }).catch((e: unknown) => {
      s.deps.logger.error({ err: e, room_id: key.room_id }, "3pid invite: could not release the pending row");
      return false;
    });
  try {
    const ctx: InviteRoomContext = { roomId: key.room_id, sender: key.sender, ...details };
    const prepared = await prepareThreepidInvite(s, req, ctx);
    if (prepared.kind === "user") {
      await inviteUser(s, key.room_id, key.sender, prepared.userId);
      await release();
      return;
    }
    const token = prepared.token;
    await s.deps.rooms.sendEvent({
      roomId: key.room_id,
      sender: key.sender,
      type: THIRD_PARTY_INVITE,
      stateKey: token,
      content: prepared.content,
      // The identity server may answer a repeated store-invite with the same token (its dedupe
      // window): the same state is not sent again.
      keepCurrentIf: (content) => inviteKeys(content).length > 0,
      // The pending row names its token in the event's transaction: a crash cannot leave an
      // event whose row still looks unfinished (and would later be made again).
      inTransaction: (db) => setPendingToken(db as Kysely<ThreepidDatabase>, key, token),
    });
  } catch (e) {
    await release();
    throw e;
  }
}

export async function inviteByThreepid(s: ThreepidServices, roomId: string, sender: string, req: ThreepidInviteRequest): Promise<void> {
  // Permission first (before any identity-server traffic); the same read gives the room
  // details store-invite sends.
  const details = await s.deps.rooms.checkInviteAndDetails(roomId, sender);
  const { medium, address } = checkRequest(req);
  s.identity.resolve(req.id_server); // 400 M_SERVER_NOT_TRUSTED before anything else
  const key = { room_id: roomId, sender, medium, address: normalizeInviteAddress(medium, address) };
  const mapKey = JSON.stringify(key);
  const timeoutMs = s.deps.config.identityServerTimeoutMs ?? 10_000;
  // Three identity-server calls and one event: after this, an unfinished claim is abandoned.
  const staleMs = 3 * timeoutMs + 60_000;
  // However long other requests take, this one answers within about one invite's time.
  const giveUpAt = Date.now() + 4 * timeoutMs + 1_000;
  for (let attempt = 0; attempt < 8 && Date.now() < giveUpAt; attempt++) {
    const now = s.deps.clock.now();
    if (await s.store.claimPendingInvite(key, now)) {
      const work = runClaimed(s, key, now, req, details);
      s.inflight.set(mapKey, work);
      try {
        await work;
      } finally {
        if (s.inflight.get(mapKey) === work) s.inflight.delete(mapKey);
      }
      return;
    }
    const row = await s.store.getPendingInvite(key);
    if (!row) continue; // released meanwhile: try to claim again
    if (row.token !== null) {
      if (await stillPending(s, roomId, row.token)) return; // exactly once: answered from the pending one
      // Revoked or used: the row no longer holds anything back.
      await s.store.releasePendingInvite(key, { token: row.token, created_ts: row.created_ts });
      continue;
    }
    // Another request is making this very invite.
    const local = s.inflight.get(mapKey);
    if (local) {
      await local; // same outcome as the request doing the work
      return;
    }
    if (now - row.created_ts > staleMs) {
      await s.store.releasePendingInvite(key, { token: null, created_ts: row.created_ts });
      continue;
    }
    // In another process: wait until it finishes (token set) or gives up (row gone).
    for (;;) {
      await sleep(25);
      const cur = await s.store.getPendingInvite(key);
      if (!cur || cur.created_ts !== row.created_ts || cur.token !== null || Date.now() > giveUpAt) break;
    }
  }
  throw new MatrixError("M_UNKNOWN", "The same invite is being made by another request; try again", 503);
}

/**
 * The 3PID API the core calls (`ThreepidApi` from `contracts.ts`) plus the join helper, onbind,
 * and the deactivation unbind.
 */
export interface ThreepidModule extends ThreepidApi {
  /**
   * For `join` with `third_party_signed`: verifies `signed` against the room's third-party invite
   * (and that it names `userId`, when given) and returns the `m.room.member` invite to send
   * (with `sender` = the original inviter) before the join. Throws 403 `M_FORBIDDEN`, or 502 when
   * the key's validity cannot be checked.
   */
  verifyThirdPartySigned(roomId: string, signed: unknown, userId?: string): Promise<ThirdPartyMemberInvite>;
  /** Handles an onbind body (the federation route calls it). */
  onbind(body: OnbindRequest): Promise<Record<string, never>>;
  /** Unbinds every 3PID the user bound through this server (account deactivation). */
  unbindAllForUser(userId: string): Promise<"success" | "no-support">;
  /**
   * Records a third-party invite the core sent itself (createRoom `invite_3pid` after
   * `prepareThreepidInvite`), so that a repeat of it is answered from the pending one.
   */
  rememberThirdPartyInvite(roomId: string, sender: string, req: Pick<ThreepidInviteRequest, "medium" | "address">, token: string): Promise<void>;
  /**
   * True when `inviteByThreepid` would answer this request from a pending invite without doing
   * anything (DECISIONS.md: such a repeat does not count against rate limits). A hint only.
   */
  isPendingRepeat(roomId: string, sender: string, req: Pick<ThreepidInviteRequest, "medium" | "address">): Promise<boolean>;
}

/** Unbinds (medium, address) of `userId` at `idServer`, or at every identity server it was bound through. */
export async function unbindThreepid(
  s: ThreepidServices,
  userId: string,
  medium: string,
  address: string,
  idServer?: string,
): Promise<"success" | "no-support"> {
  const normal = normalizeInviteAddress(medium, address);
  const servers = idServer !== undefined ? [idServer] : [...new Set((await s.store.bindsFor(userId, medium, normal)).map((b) => b.id_server))];
  if (servers.length === 0) return "no-support";
  let all = true;
  for (const srv of servers) {
    const r = await s.identity.unbind(srv, userId, { medium, address: normal });
    if (r !== "success") all = false;
    await s.store.removeBind(userId, medium, normal, srv);
  }
  return all ? "success" : "no-support";
}

export async function unbindAllForUser(s: ThreepidServices, userId: string): Promise<"success" | "no-support"> {
  let all = true;
  for (const b of await s.store.bindsFor(userId)) {
    try {
      const r = await s.identity.unbind(b.id_server, userId, { medium: b.medium, address: b.address });
      if (r !== "success") all = false;
      await s.store.removeBind(userId, b.medium, b.address, b.id_server);
    } catch (e) {
      all = false;
      s.deps.logger.warn({ err: e instanceof Error ? e.message : String(e), id_server: b.id_server }, "deactivation: unbind failed");
    }
  }
  return all ? "success" : "no-support";
}

export function createThreepidApi<DB>(deps: ThreepidDeps<DB>): ThreepidModule {
  const s = threepidServices(deps);
  return {
    prepareThreepidInvite: (req, ctx) => prepareThreepidInvite(s, req, ctx),
    lookupThreepidInvite: (req) => lookupThreepidInvite(s, req),
    storeThreepidInvite: (req, ctx) => storeThreepidInvite(s, req, ctx),
    threepidInviteKey: (req) => `${req.medium}\u0000${normalizeInviteAddress(req.medium, req.address)}`,
    inviteByThreepid: (roomId, sender, req) => inviteByThreepid(s, roomId, sender, req),
    verifyThirdPartySigned: (roomId, signed, userId) => verifyThirdPartySigned(s, roomId, signed, userId),
    onbind: (body) => handleOnbind(s, body),
    unbindAllForUser: (userId) => unbindAllForUser(s, userId),
    async isPendingRepeat(roomId, sender, req) {
      if (typeof req.medium !== "string" || typeof req.address !== "string") return false;
      const row = await s.store.getPendingInvite({ room_id: roomId, sender, medium: req.medium, address: normalizeInviteAddress(req.medium, req.address) });
      return row !== undefined && row.token !== null && (await stillPending(s, roomId, row.token));
    },
    async rememberThirdPartyInvite(roomId, sender, req, token) {
      const key = { room_id: roomId, sender, medium: req.medium, address: normalizeInviteAddress(req.medium, req.address) };
      if (await s.store.claimPendingInvite(key, s.deps.clock.now())) await s.store.setPendingToken(key, token);
    },
  };
}
