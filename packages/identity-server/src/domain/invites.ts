/**
 * Third-party invites (https://spec.matrix.org/v1.18/identity-service-api/#invitation-storage):
 * `store-invite` validates, refuses bound addresses (`M_THREEPID_IN_USE` with the mxid, no mail),
 * answers a repeat of a recent identical invite with the same token and keys (no mail), and
 * otherwise stores the invite and its mail in one transaction. `sign-ed25519` and the key
 * validity checks honour the invite's expiry.
 */
import { createHash } from "node:crypto";
import { sql } from "kysely";
import { MatrixError } from "@beckon/protocol";
import { ALPHABET_LETTERS, randomString, type DomainContext } from "./context.js";
import { canonicalEphemeralKey, decodeKey, generateEphemeralKeyPair, signWithSeed } from "./keys.js";
import { canonicalEmail, isValidEmail, redactEmail } from "./threepid.js";
import type { Principal } from "./accounts.js";
import type { StoredInvite } from "../storage/index.js";

export interface StoreInviteRequest {
  medium: string;
  address: string;
  room_id: string;
  sender: string;
  room_alias?: string;
  room_avatar_url?: string;
  room_join_rules?: string;
  room_name?: string;
  room_type?: string;
  sender_display_name?: string;
  sender_avatar_url?: string;
  "org.matrix.web_client_location"?: string;
}

export type StoreInviteResponse = {
  token: string;
  public_keys: { public_key: string; key_validity_url: string }[];
  public_key: string;
  display_name: string;
};

const DETAIL_KEYS = [
  "room_alias",
  "room_avatar_url",
  "room_join_rules",
  "room_name",
  "room_type",
  "sender_display_name",
  "sender_avatar_url",
  "org.matrix.web_client_location",
] as const;

function responseFor(ctx: DomainContext, invite: StoredInvite, rawAddress: string): StoreInviteResponse {
  const base = ctx.settings.publicBaseUrl;
  return {
    token: invite.token,
    public_keys: [
      { public_key: ctx.keys.publicKey, key_validity_url: `${base}/_matrix/identity/v2/pubkey/isvalid` },
      { public_key: invite.ephemeralPublicKey, key_validity_url: `${base}/_matrix/identity/v2/pubkey/ephemeral/isvalid` },
    ],
    public_key: ctx.keys.publicKey,
    display_name: redactEmail(rawAddress, ctx.settings.redactUsernameChars, ctx.settings.redactDomainChars),
  };
}

/** The sign URL of the invite mail: `<IS base>/_matrix/identity/v2/sign-ed25519?token=…&private_key=…`. */
export function signUrl(ctx: DomainContext, token: string, privateKey: string): string {
  const q = new URLSearchParams({ token, private_key: privateKey });
  return `${ctx.settings.publicBaseUrl}/_matrix/identity/v2/sign-ed25519?${q.toString()}`;
}

function str(x: unknown): string {
  return typeof x === "string" ? x : "";
}

/** The web-client join link (DECISIONS "Mail"). */
function joinLink(webClient: string, invite: StoredInvite, address: string, sign: string): string {
  const d = invite.details;
  const roomRef = str(d.room_alias) || invite.roomId;
  const q = new URLSearchParams({
    email: address,
    signurl: sign,
    room_name: str(d.room_name),
    room_avatar_url: str(d.room_avatar_url),
    inviter_name: str(d.sender_display_name) || invite.sender,
    guest_access_token: "",
    guest_user_id: "",
    room_type: str(d.room_type),
  });
  return `${webClient.replace(/\/+$/, "")}/#/room/${encodeURIComponent(roomRef)}?${q.toString()}`;
}

export async function storeInvite(ctx: DomainContext, principal: Principal, req: StoreInviteRequest): Promise<StoreInviteResponse> {
  if (req.sender !== principal.userId) throw new MatrixError("M_UNAUTHORIZED", "'sender' doesn't match the account's user", 403);
  const now = ctx.clock.now();
  const address = req.medium === "email" ? canonicalEmail(req.address) : req.address;
  // Sydent checks the binding before the medium.
  const bound = await ctx.stores.associations.get(req.medium, address, now);
  if (bound) throw new MatrixError("M_THREEPID_IN_USE", "Binding already known", 400, { mxid: bound.mxid });
  if (req.medium !== "email") throw new MatrixError("M_UNRECOGNIZED", "Didn't understand medium", 400);
  if (!isValidEmail(address)) throw new MatrixError("M_INVALID_EMAIL", "Invalid email address", 400);

  const details: Record<string, unknown> = {};
  for (const k of DETAIL_KEYS) {
    const val = req[k];
    if (typeof val === "string") details[k] = val;
  }
  const since = now - ctx.settings.inviteDedupeWindowMs;
  const dedupeLockKey = createHash("sha256").update(`${req.room_id}\u0000${req.sender}\u0000${req.medium}\u0000${address}`).digest().readInt32BE(0);

  // Prepared outside the transaction (it holds the SQLite writer): wasted only on a duplicate.
  const keys = generateEphemeralKeyPair(ctx.deterministicKeys ? ctx.randomBytes : undefined);
  const token = randomString(ctx, 128, ALPHABET_LETTERS);
  // SQLite: concurrent store-invites share one commit (each in its own savepoint).
  const outcome = await (ctx.transactGrouped ?? ctx.transact)(async (s) => {
    // Serialise identical requests on PostgreSQL (SQLite has one writer anyway).
    if (s.engine === "postgres") await sql`SELECT pg_advisory_xact_lock(${dedupeLockKey})`.execute(s.db);
    const dup = ctx.settings.inviteDedupeWindowMs > 0 ? await s.invites.findDuplicate(req.room_id, req.sender, req.medium, address, since, now) : undefined;
    if (dup) return { invite: dup, fresh: false };
    ctx.limits.check("storeInvite.sender", req.sender);
    const invite: StoredInvite = {
      token,
      medium: req.medium,
      address,
      roomId: req.room_id,
      sender: req.sender,
      ephemeralPublicKey: keys.publicKey,
      createdTs: now,
      expiresTs: now + ctx.settings.inviteLifetimeMs,
      deliveredTs: null,
      details,
    };
    await s.invites.insert(invite);
    const sign = signUrl(ctx, invite.token, keys.privateKey);
    const webClient = str(details["org.matrix.web_client_location"]) || ctx.settings.webClientLocation;
    await ctx.mail.enqueue(
      s.db as never,
      {
        to: address,
        kind: "invite",
        template: "invite",
        vars: {
          to: address,
          token: invite.token,
          room_id: invite.roomId,
          room_alias: str(details.room_alias),
          room_avatar_url: str(details.room_avatar_url),
          room_join_rules: str(details.room_join_rules),
          room_name: str(details.room_name),
          room_type: str(details.room_type),
          sender: invite.sender,
          sender_display_name: str(details.sender_display_name) || invite.sender,
          sender_avatar_url: str(details.sender_avatar_url),
          ephemeral_private_key: keys.privateKey,
          web_client_location: webClient,
          sign_url: sign,
          join_link: joinLink(webClient, invite, address, sign),
          is_base_url: ctx.settings.publicBaseUrl,
          expires_ts: invite.expiresTs,
        },
        dedupeKey: `invite:${invite.token}`,
      },
      now,
    );
    return { invite, fresh: true };
  });
  if (outcome.fresh) {
    ctx.mail.wake();
    ctx.metrics.inviteStored();
  } else {
    ctx.metrics.inviteDeduplicated();
  }
  return responseFor(ctx, outcome.invite, req.address);
}

/**
 * `sign-ed25519`: signs `{mxid, sender, token}` with the ephemeral private key from the mail
 * (key id `ed25519:0` as Sydent does). Unknown or expired token → 404 `M_UNRECOGNIZED`.
 */
export async function signEd25519(
  ctx: DomainContext,
  req: { mxid: string; token: string; private_key: string },
): Promise<{ mxid: string; sender: string; token: string; signatures: Record<string, Record<string, string>> }> {
  const invite = await ctx.stores.invites.get(req.token);
  if (!invite || invite.expiresTs <= ctx.clock.now()) throw new MatrixError("M_UNRECOGNIZED", "Didn't recognize token", 404);
  const seed = decodeKey(req.private_key);
  if (!seed || seed.length !== 32) throw new MatrixError("M_INVALID_PARAM", "private_key is not a base64 ed25519 seed", 400);
  return signWithSeed({ mxid: req.mxid, sender: invite.sender, token: invite.token }, ctx.settings.serverName, seed);
}

/** `pubkey/ephemeral/isvalid`: true while an unexpired invite has this key (either alphabet accepted). */
export async function ephemeralKeyIsValid(ctx: DomainContext, publicKey: string): Promise<boolean> {
  const canonical = canonicalEphemeralKey(publicKey);
  if (!canonical) return false;
  return ctx.stores.invites.ephemeralKeyValid(canonical, ctx.clock.now());
}

/** Deletes expired invites (and their queued deliveries). */
export async function purgeExpiredInvites(ctx: Pick<DomainContext, "stores" | "clock" | "logger">): Promise<number> {
  const n = await ctx.stores.invites.purgeExpired(ctx.clock.now());
  if (n > 0) ctx.logger.info({ invites: n }, "expired invites purged");
  return n;
}
