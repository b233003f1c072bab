/**
 * Turning identity-server signatures into room invites: `POST|PUT /_matrix/federation/v1/3pid/onbind`
 * (https://spec.matrix.org/v1.18/server-server-api/#third-party-invites) and the check behind
 * `join` with `third_party_signed`.
 *
 * Verification mirrors Synapse (spec-digest §3.8): the room's current `m.room.third_party_invite`
 * with `state_key` = token; every public key in it (`public_key` and `public_keys[]`, either
 * base64 alphabet) against every `ed25519:*` signature of every entity in `signed` (key ids are
 * ignored: SyTest's mock and Sydent file ephemeral signatures under `ed25519:0`); then the
 * verifying key's `key_validity_url?public_key=<key as stored>` must say `valid: true`.
 *
 * onbind handles each invite on its own (issue 9): an invite is done, refused for good (logged),
 * or worth retrying; the reply is 2xx unless one is worth retrying (5xx, so the identity server
 * retries). A replay never re-invites: the target's membership and a claim row keyed by
 * (room, token, mxid) make the exchange idempotent — Synapse re-invites on a replay.
 */
import {
  MatrixError,
  idServerName,
  isJsonObject,
  isMatrixError,
  parseUserId,
  vOnbindInvite,
  verifyJsonSignatureSync,
  type OnbindRequest,
  type UserId,
} from "@beckon/protocol";
import type { StoredEvent } from "./contracts.js";
import { memoSigningProvider } from "./verify-cache.js";
import type { KeyValidity } from "../identity/client.js";
import type { ThreepidServices } from "./threepid-services.js";

export const THIRD_PARTY_INVITE = "m.room.third_party_invite";

/** A signed `{mxid, token, signatures, sender?}` block, as received. */
export type SignedBlock = Record<string, unknown> & { mxid: string; token: string; signatures: Record<string, unknown> };

/** Outcome of verifying one signed block against a room. */
export type VerifyOutcome =
  | { ok: true; invite: StoredEvent; displayName: string }
  | { ok: false; retry: boolean; error: MatrixError };

/** Cache of key-validity answers within one onbind request (Synapse checks once per onbind). */
export type ValidityCache = Map<string, Promise<KeyValidity>>;

interface KeyEntry {
  publicKey: string;
  keyValidityUrl?: string;
}

/** The public keys an `m.room.third_party_invite` content lists, legacy key first. */
export function inviteKeys(content: Record<string, unknown>): KeyEntry[] {
  const keys: KeyEntry[] = [];
  if (typeof content.public_key === "string" && content.public_key !== "") {
    const k: KeyEntry = { publicKey: content.public_key };
    if (typeof content.key_validity_url === "string" && content.key_validity_url !== "") k.keyValidityUrl = content.key_validity_url;
    keys.push(k);
  }
  if (Array.isArray(content.public_keys)) {
    for (const e of content.public_keys) {
      if (!isJsonObject(e) || typeof e.public_key !== "string" || e.public_key === "") continue;
      const k: KeyEntry = { publicKey: e.public_key };
      if (typeof e.key_validity_url === "string" && e.key_validity_url !== "") k.keyValidityUrl = e.key_validity_url;
      keys.push(k);
    }
  }
  return keys;
}

function forbidden(message: string): MatrixError {
  return new MatrixError("M_FORBIDDEN", message, 403);
}

/** The first key of `keys` that verifies some `ed25519:*` signature in `signed`. */
async function findSigningKey(signed: SignedBlock, keys: KeyEntry[]): Promise<KeyEntry | undefined> {
  const sigs = signed.signatures;
  for (const key of keys) {
    for (const [entity, byKey] of Object.entries(sigs)) {
      if (!isJsonObject(byKey)) continue;
      for (const keyId of Object.keys(byKey)) {
        if (!keyId.startsWith("ed25519:")) continue;
        // verifyJsonSignature decodes the key in either alphabet and never throws.
        if (verifyJsonSignatureSync(signed, entity, keyId, key.publicKey, memoSigningProvider)) return key;
      }
    }
  }
  return undefined;
}

/**
 * Verifies `signed` against the room's current third-party invite for `signed.token`, including
 * the key-validity check. Never throws for a verdict; errors of the room core propagate.
 */
export async function verifySignedInvite(s: ThreepidServices, roomId: string, signed: SignedBlock, validity?: ValidityCache): Promise<VerifyOutcome> {
  const invite = await s.deps.rooms.getStateEvent(roomId, THIRD_PARTY_INVITE, signed.token);
  if (!invite) return { ok: false, retry: false, error: forbidden("No third-party invite with this token in the room") };
  const keys = inviteKeys(invite.content);
  if (keys.length === 0) return { ok: false, retry: false, error: forbidden("The third-party invite was revoked") };
  const key = await findSigningKey(signed, keys);
  if (!key) return { ok: false, retry: false, error: forbidden("The third-party invite's signature does not match any of its public keys") };
  if (key.keyValidityUrl !== undefined) {
    const cacheKey = `${key.keyValidityUrl}\n${key.publicKey}`;
    let pending = validity?.get(cacheKey);
    if (!pending) {
      pending = s.identity.checkKeyValidity(key.keyValidityUrl, key.publicKey);
      validity?.set(cacheKey, pending);
    }
    const verdict = await pending;
    if (verdict === "invalid") return { ok: false, retry: false, error: forbidden("Third party certificate was invalid") };
    if (verdict === "refused") return { ok: false, retry: false, error: forbidden("Third party certificate cannot be checked: its key_validity_url is not allowed") };
    if (verdict === "unreachable") return { ok: false, retry: true, error: new MatrixError("M_UNKNOWN", "Third party certificate could not be checked", 502) };
  }
  const displayName = typeof invite.content.display_name === "string" ? invite.content.display_name : "";
  return { ok: true, invite, displayName };
}

/** The `m.room.member` invite to send for a verified signed block. */
export interface ThirdPartyMemberInvite {
  /** The original inviter: the `m.room.third_party_invite` event's sender. */
  sender: string;
  /** The invitee (`signed.mxid`). */
  stateKey: string;
  content: { membership: "invite"; third_party_invite: { display_name: string; signed: Record<string, unknown> } };
}

function memberInvite(invite: StoredEvent, displayName: string, signed: SignedBlock): ThirdPartyMemberInvite {
  return {
    sender: invite.sender,
    stateKey: signed.mxid,
    content: { membership: "invite", third_party_invite: { display_name: displayName, signed } },
  };
}

function asSignedBlock(x: unknown): SignedBlock | undefined {
  if (!isJsonObject(x)) return undefined;
  if (typeof x.mxid !== "string" || typeof x.token !== "string" || x.token === "" || !isJsonObject(x.signatures)) return undefined;
  return x as SignedBlock;
}

/**
 * The check behind `join` with `third_party_signed`: verifies the block for `roomId` (and that it
 * names `userId`, when given) and returns the member invite to send before the join.
 *
 * @throws MatrixError 403 `M_FORBIDDEN` (unknown room, no/revoked invite, bad signature,
 * `valid: false`, sender mismatch), 502 `M_UNKNOWN` (validity URL unreachable).
 */
export async function verifyThirdPartySigned(s: ThreepidServices, roomId: string, signed: unknown, userId?: string): Promise<ThirdPartyMemberInvite> {
  const block = asSignedBlock(signed);
  if (!block) throw new MatrixError("M_BAD_JSON", "third_party_signed needs mxid, token and signatures", 400);
  if (userId !== undefined && block.mxid !== userId) throw forbidden("third_party_signed is for another user");
  if ((await s.deps.rooms.getRoomVersion(roomId)) === undefined) {
    throw forbidden("This server does not host the room, and federation is not enabled");
  }
  const out = await verifySignedInvite(s, roomId, block);
  if (!out.ok) throw out.error;
  if (block.sender !== undefined && block.sender !== out.invite.sender) {
    throw forbidden("third_party_signed.sender is not the sender of the third-party invite");
  }
  // The invite is being used: it no longer holds back a new 3PID invite of the same address,
  // and a later onbind of the same token for this user (the address bound afterwards) must not
  // invite again (spec-digest §7.3: Synapse would).
  await s.store.forgetPendingToken(roomId, block.token);
  await s.store.markOnbindDone(roomId, block.token, block.mxid, s.deps.clock.now());
  return memberInvite(out.invite, out.displayName, block);
}

type InviteOutcome = "done" | "refused" | "retry";

/**
 * A claim older than this is from a request that died; another may take it over. The checks
 * that can take long (key validity) happen before the claim; after it only the member event is
 * written, so a live claim is seconds old at most. A crash between claim and send therefore
 * delays that invite by about this long (the identity server retries), never loses it.
 */
const STALE_CLAIM_MS = 30_000;

/** Per-request memo of lookups every invite of one onbind repeats (same invitee, few rooms). */
interface OnbindMemo {
  validity: ValidityCache;
  users: Map<string, Promise<boolean>>;
}

/** A verified invite, ready to be claimed and sent. */
interface ReadyInvite {
  roomId: string;
  token: string;
  target: UserId;
  ctx: { room_id: string; mxid: string; token: string; index: number };
  ev: ThirdPartyMemberInvite;
}

/** Everything up to the claim: validation, reads and the signature and key checks. */
async function prepareOne(s: ThreepidServices, raw: unknown, memo: OnbindMemo, index: number): Promise<InviteOutcome | ReadyInvite> {
  const validity = memo.validity;
  const log = s.deps.logger;
  let inv;
  try {
    inv = vOnbindInvite(raw, `invites[${index}]`);
  } catch (e) {
    log.warn({ index, err: e instanceof Error ? e.message : String(e) }, "onbind: malformed invite refused");
    return "refused";
  }
  const signed = asSignedBlock(raw && isJsonObject(raw) ? raw.signed : undefined);
  const ctx = { room_id: inv.room_id, mxid: inv.mxid, token: inv.signed.token, index };
  if (!signed) {
    log.warn(ctx, "onbind: invite without a usable signed block refused");
    return "refused";
  }
  if (signed.mxid !== inv.mxid) {
    log.warn(ctx, "onbind: signed.mxid differs from the invite's mxid; refused");
    return "refused";
  }
  let target: UserId;
  try {
    target = parseUserId(signed.mxid);
  } catch {
    log.warn(ctx, "onbind: invalid mxid refused");
    return "refused";
  }
  if (idServerName(target) !== s.deps.serverName) {
    log.warn(ctx, "onbind: mxid is not a user of this server; refused");
    return "refused";
  }
  if ((await s.deps.rooms.getRoomVersion(inv.room_id)) === undefined) {
    // DECISIONS.md: federation is out of scope; a room we do not host is refused for good.
    log.warn(ctx, "onbind: room not hosted here (federation is not enabled); refused");
    return "refused";
  }
  let exists = memo.users.get(target);
  if (!exists) {
    exists = s.deps.accounts.userExists(target);
    memo.users.set(target, exists);
  }
  if (!(await exists)) {
    log.warn(ctx, "onbind: no such local user; refused");
    return "refused";
  }
  const membership = await s.deps.rooms.getMembership(inv.room_id, target);
  if (membership === "join" || membership === "invite") {
    // Already there (a replay, or invited some other way): nothing to do, never re-invite.
    await s.store.forgetPendingToken(inv.room_id, signed.token);
    return "done";
  }
  if (membership === "ban") {
    log.warn(ctx, "onbind: target is banned from the room; refused");
    return "refused";
  }
  // Verify before claiming: a forged copy of a valid invite (same room, token and mxid) must
  // not hold the claim while the genuine one is turned away.
  let result: VerifyOutcome;
  try {
    result = await verifySignedInvite(s, inv.room_id, signed, validity);
  } catch (e) {
    log.error({ ...ctx, err: e }, "onbind: verification failed unexpectedly; will be retried");
    return "retry";
  }
  if (!result.ok) {
    log.warn({ ...ctx, reason: result.error.message }, result.retry ? "onbind: invite cannot be checked now; retry" : "onbind: invite refused");
    return result.retry ? "retry" : "refused";
  }
  return { roomId: inv.room_id, token: signed.token, target, ctx, ev: memberInvite(result.invite, result.displayName, signed) };
}

/**
 * A claim that another request holds. Done before → nothing to do. Pending: when the member
 * event is already in the room the invite is done; a stale claim (its request died) is taken
 * over; a fresh one is either in progress elsewhere or was left by a crash between the claim and
 * the send — the caller answers "retry" so the identity server comes back, never "done" (which
 * would let it mark an invite delivered that no room holds).
 */
async function retakeClaim(s: ThreepidServices, r: ReadyInvite, now: number): Promise<"claimed" | "done" | "busy"> {
  const claim = await s.store.getOnbindClaim(r.roomId, r.token, r.target);
  if (!claim || claim.state !== "pending") return "done";
  const membership = await s.deps.rooms.getMembership(r.roomId, r.target);
  if (membership === "invite" || membership === "join") return "done";
  if (now - claim.created_ts > STALE_CLAIM_MS) {
    await s.store.releaseOnbind(r.roomId, r.token, r.target, claim.created_ts);
    return (await s.store.claimOnbind(r.roomId, r.token, r.target, now)) ? "claimed" : "busy";
  }
  return "busy";
}

/** Sends one claimed invite's member event; releases the claim when that fails. */
async function sendClaimed(s: ThreepidServices, r: ReadyInvite): Promise<InviteOutcome> {
  const log = s.deps.logger;
  try {
    await s.deps.rooms.sendEvent({ roomId: r.roomId, sender: r.ev.sender, type: "m.room.member", stateKey: r.ev.stateKey, content: r.ev.content });
  } catch (e) {
    await s.store.releaseOnbind(r.roomId, r.token, r.target);
    if (isMatrixError(e) && e.status >= 400 && e.status < 500) {
      log.warn({ ...r.ctx, reason: e.message }, "onbind: the room refused the invite");
      return "refused";
    }
    log.error({ ...r.ctx, err: e }, "onbind: sending the invite failed; will be retried");
    return "retry";
  }
  return "done";
}

/** Runs `fn` over `n` items with at most `c` in flight. */
async function inPool(n: number, c: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(c, n) }, worker));
}

/** Invites handled per round: checks in parallel, then one claim statement, the sends, one finishing transaction. */
const ONBIND_ROUND = 200;

/**
 * One round of an onbind body: every invite is checked (reads, signature, cached key validity),
 * the verified ones are claimed together (one statement per 100), their member events sent
 * (concurrently: sends to one room share a transaction), and the claims of the sent ones marked
 * done and their tokens forgotten in one transaction. A crash in between leaves claims
 * `pending`, which a later onbind takes over once stale (no invite is sent twice).
 */
async function onbindRound(s: ThreepidServices, items: readonly { raw: unknown; index: number }[], memo: OnbindMemo, outcomes: InviteOutcome[], concurrency: number): Promise<number[]> {
  const log = s.deps.logger;
  const ready: ReadyInvite[] = [];
  const readyIndex: number[] = [];
  await inPool(items.length, concurrency, async (j) => {
    const i = items[j]!.index;
    try {
      const r = await prepareOne(s, items[j]!.raw, memo, i);
      if (typeof r === "string") outcomes[i] = r;
      else {
        ready.push(r);
        readyIndex.push(i);
      }
    } catch (e) {
      log.error({ index: i, err: e }, "onbind: invite failed unexpectedly; will be retried");
      outcomes[i] = "retry";
    }
  });
  // Two invites of one body for the same member of the same room (different tokens): the
  // first is sent now, the others wait for the next round, which finds the member invited.
  const deferred: number[] = [];
  {
    const firsts = new Set<string>();
    const keepR: ReadyInvite[] = [];
    const keepI: number[] = [];
    ready.forEach((r, j) => {
      const key = `${r.roomId}\u0000${r.target}`;
      if (firsts.has(key)) deferred.push(readyIndex[j]!);
      else {
        firsts.add(key);
        keepR.push(r);
        keepI.push(readyIndex[j]!);
      }
    });
    ready.splice(0, ready.length, ...keepR);
    readyIndex.splice(0, readyIndex.length, ...keepI);
  }
  if (ready.length === 0) return deferred;
  const now = s.deps.clock.now();
  let claimed: boolean[];
  try {
    claimed = await s.store.claimOnbindMany(ready.map((r) => ({ roomId: r.roomId, token: r.token, mxid: r.target })), now);
  } catch (e) {
    log.error({ err: e }, "onbind: claiming failed; will be retried");
    for (const i of readyIndex) outcomes[i] = "retry";
    return deferred;
  }
  const sent: ReadyInvite[] = [];
  // All at once: sends into different rooms then share transactions (RoomEvents batches them).
  await inPool(ready.length, ready.length, async (j) => {
    const r = ready[j]!;
    const i = readyIndex[j]!;
    try {
      if (!claimed[j]) {
        const held = await retakeClaim(s, r, now);
        if (held !== "claimed") {
          outcomes[i] = held === "done" ? "done" : "retry";
          return;
        }
      }
      const o = await sendClaimed(s, r);
      outcomes[i] = o;
      if (o === "done") sent.push(r);
    } catch (e) {
      log.error({ ...r.ctx, err: e }, "onbind: invite failed unexpectedly; will be retried");
      outcomes[i] = "retry";
    }
  });
  try {
    await s.store.finishOnbindMany(sent.map((r) => ({ roomId: r.roomId, token: r.token, mxid: r.target })));
  } catch (e) {
    // The invites are in the rooms; a claim left `pending` only means a stale takeover later
    // finds the member already invited and does nothing.
    log.error({ err: e }, "onbind: marking claims done failed");
  }
  for (const r of sent) log.info(r.ctx, "onbind: third-party invite delivered");
  return deferred;
}

/**
 * Handles an onbind body. Resolves to `{}` when every invite is done or refused for good;
 * throws 502 when one is worth retrying.
 */
export async function handleOnbind(s: ThreepidServices, body: OnbindRequest): Promise<Record<string, never>> {
  const invites = body.invites ?? [];
  const memo: OnbindMemo = { validity: new Map(), users: new Map() };
  const outcomes: InviteOutcome[] = new Array<InviteOutcome>(invites.length);
  const concurrency = Math.max(1, s.deps.config.onbindConcurrency ?? 8);
  let todo: { raw: unknown; index: number }[] = invites.map((raw, index) => ({ raw, index }));
  while (todo.length > 0) {
    const deferred: number[] = [];
    for (let off = 0; off < todo.length; off += ONBIND_ROUND) {
      deferred.push(...(await onbindRound(s, todo.slice(off, off + ONBIND_ROUND), memo, outcomes, concurrency)));
    }
    todo = deferred.map((index) => ({ raw: invites[index], index }));
  }
  const retry = outcomes.filter((o) => o === "retry").length;
  if (retry > 0) {
    throw new MatrixError("M_UNKNOWN", `${retry} of ${invites.length} invite(s) could not be processed now; retry later`, 502);
  }
  return {};
}
