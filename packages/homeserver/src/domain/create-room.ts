/**
 * `POST createRoom` (https://spec.matrix.org/v1.18/client-server-api/#creation): the events in
 * the spec's order — create, creator's join, power levels (with the override), canonical alias,
 * preset events, `initial_state`, name, topic, invites, then 3PID invites — built, authorised
 * and committed in one transaction.
 *
 * All or nothing (issue 9): the identity-server work for `invite_3pid` happens before anything is
 * committed (and after the other events have passed the auth rules); if any entry fails,
 * nothing is created.
 */
import { randomBytes } from "node:crypto";
import { DEFAULT_ROOM_VERSION, MatrixError, stateKeyId } from "@beckon/protocol";
import { isUniqueViolation } from "@beckon/server-kit";
import type { InviteRoomContext, PreparedThreepidInvite, ThreepidApi, ThreepidInviteRequest } from "./contracts.js";
import { ChainBuilder, asRoomVersion, type EventDraft, type StateMap } from "./room-events.js";
import type { Rooms } from "./rooms.js";

export interface CreateRoomInput {
  visibility?: "public" | "private" | undefined;
  room_alias_name?: string | undefined;
  name?: string | undefined;
  topic?: string | undefined;
  invite?: string[] | undefined;
  invite_3pid?: ThreepidInviteRequest[] | undefined;
  room_version?: string | undefined;
  creation_content?: Record<string, unknown> | undefined;
  initial_state?: { type: string; state_key?: string | undefined; content: Record<string, unknown> }[] | undefined;
  preset?: "private_chat" | "public_chat" | "trusted_private_chat" | undefined;
  is_direct?: boolean | undefined;
  power_level_content_override?: Record<string, unknown> | undefined;
}

const PRESETS = {
  private_chat: { join_rule: "invite", history_visibility: "shared", guest_access: "can_join", invite: 0 },
  trusted_private_chat: { join_rule: "invite", history_visibility: "shared", guest_access: "can_join", invite: 0 },
  public_chat: { join_rule: "public", history_visibility: "shared", guest_access: "forbidden", invite: 50 },
} as const;

function newRoomId(serverName: string): string {
  const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  let s = "";
  for (const b of randomBytes(18)) s += letters[b % letters.length];
  return `!${s}:${serverName}`;
}

/** Member-event profile fields of a local user (Synapse copies them into join and invite events). */
async function profileContent(rooms: Rooms, userId: string): Promise<Record<string, unknown>> {
  const u = await rooms.deps.accounts.getUser(userId);
  const out: Record<string, unknown> = {};
  if (u?.displayname) out.displayname = u.displayname;
  if (u?.avatarUrl) out.avatar_url = u.avatarUrl;
  return out;
}
export { profileContent };

/** The 3PID module as createRoom uses it (`rememberThirdPartyInvite` lets a later repeat be answered from the pending invite). */
export type CreateRoomThreepid = ThreepidApi & {
  rememberThirdPartyInvite?(roomId: string, sender: string, req: { medium: string; address: string }, token: string): Promise<void>;
};

export async function createRoom(rooms: Rooms, creator: string, req: CreateRoomInput, threepid: CreateRoomThreepid | undefined): Promise<{ room_id: string }> {
  const serverName = rooms.serverName;
  const roomVersion = asRoomVersion(req.room_version ?? DEFAULT_ROOM_VERSION);
  const preset = req.preset ?? (req.visibility === "public" ? "public_chat" : "private_chat");
  const p = PRESETS[preset];
  let alias: string | undefined;
  if (req.room_alias_name !== undefined) {
    if (/[:\s#]/.test(req.room_alias_name) || req.room_alias_name === "") throw new MatrixError("M_INVALID_PARAM", "Invalid characters in room alias", 400);
    alias = `#${req.room_alias_name}:${serverName}`;
    rooms.checkLocalAlias(alias);
    if (await rooms.deps.rooms.getAlias(alias)) throw new MatrixError("M_ROOM_IN_USE", "Room alias already taken", 400);
  }
  const invites = [...new Set(req.invite ?? [])];
  for (const u of invites) {
    if (!rooms.isLocal(u)) throw new MatrixError("M_FORBIDDEN", `Cannot invite ${u}: federation is not enabled`, 403);
  }
  if ((req.invite_3pid?.length ?? 0) > 0 && !threepid) throw new MatrixError("M_UNKNOWN", "Third-party invites are not available", 500);
  const roomId = newRoomId(serverName);
  const initialState = req.initial_state ?? [];
  const joinRule = initialState.find((e) => e.type === "m.room.join_rules" && (e.state_key ?? "") === "")?.content.join_rule ?? p.join_rule;
  const creationType = req.creation_content?.type;

  const now = rooms.deps.clock.now();
  const state: StateMap = new Map();
  const chain = new ChainBuilder(roomId, roomVersion, rooms.deps.events.key, now, undefined, 0, state);
  const add = (d: EventDraft) => chain.add(d);
  const sk = (type: string, key = "") => stateKeyId(type, key);
  const overridden = new Set(initialState.map((e) => sk(e.type, e.state_key ?? "")));

  const createContent: Record<string, unknown> = { ...(req.creation_content ?? {}), room_version: roomVersion };
  if (roomVersion === "10") createContent.creator = creator;
  else delete createContent.creator;
  add({ type: "m.room.create", stateKey: "", sender: creator, content: createContent });
  add({ type: "m.room.member", stateKey: creator, sender: creator, content: { membership: "join", ...(await profileContent(rooms, creator)) } });

  const users: Record<string, number> = { [creator]: 100 };
  if (preset === "trusted_private_chat") for (const u of invites) users[u] = 100;
  const pl: Record<string, unknown> = {
    users,
    users_default: 0,
    events: {
      "m.room.name": 50,
      "m.room.power_levels": 100,
      "m.room.history_visibility": 100,
      "m.room.canonical_alias": 50,
      "m.room.avatar": 50,
      "m.room.tombstone": 100,
      "m.room.server_acl": 100,
      "m.room.encryption": 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: p.invite,
    historical: 100,
  };
  if (!overridden.has(sk("m.room.power_levels"))) {
    add({ type: "m.room.power_levels", stateKey: "", sender: creator, content: { ...pl, ...(req.power_level_content_override ?? {}) } });
  }
  if (alias && !overridden.has(sk("m.room.canonical_alias"))) add({ type: "m.room.canonical_alias", stateKey: "", sender: creator, content: { alias } });
  if (!overridden.has(sk("m.room.join_rules"))) add({ type: "m.room.join_rules", stateKey: "", sender: creator, content: { join_rule: p.join_rule } });
  if (!overridden.has(sk("m.room.history_visibility"))) {
    add({ type: "m.room.history_visibility", stateKey: "", sender: creator, content: { history_visibility: p.history_visibility } });
  }
  if (!overridden.has(sk("m.room.guest_access"))) add({ type: "m.room.guest_access", stateKey: "", sender: creator, content: { guest_access: p.guest_access } });
  for (const e of initialState) {
    if (e.type === "m.room.create" || e.type === "m.room.member") throw new MatrixError("M_INVALID_PARAM", `initial_state may not contain ${e.type}`, 400);
    let content = e.content;
    if (e.type === "m.room.power_levels") content = { ...content, ...(req.power_level_content_override ?? {}) };
    add({ type: e.type, stateKey: e.state_key ?? "", sender: creator, content });
  }
  if (req.name !== undefined) add({ type: "m.room.name", stateKey: "", sender: creator, content: { name: req.name } });
  if (req.topic !== undefined) add({ type: "m.room.topic", stateKey: "", sender: creator, content: { topic: req.topic } });
  const invited = new Set<string>();
  for (const u of invites) {
    if (u === creator) continue;
    const content: Record<string, unknown> = { membership: "invite", ...(await profileContent(rooms, u)) };
    if (req.is_direct) content.is_direct = true;
    add({ type: "m.room.member", stateKey: u, sender: creator, content });
    invited.add(u);
  }
  // The identity-server work comes after every other event is built and authorised (so a room
  // that cannot be created never causes an invite mail) and before anything is committed.
  const prepared: PreparedThreepidInvite[] = [];
  const entries: ThreepidInviteRequest[] = [];
  if (req.invite_3pid && threepid) {
    const ctx: InviteRoomContext = { roomId, sender: creator };
    if (alias) ctx.room_alias = alias;
    if (typeof joinRule === "string") ctx.room_join_rules = joinRule;
    if (req.name !== undefined) ctx.room_name = req.name;
    if (typeof creationType === "string") ctx.room_type = creationType;
    // One invite per invitee: the same address twice (in any case) is one invite.
    const seen = new Set<string>();
    for (const entry of req.invite_3pid) {
      const key = threepid.threepidInviteKey?.(entry) ?? `${entry.medium}\u0000${entry.address}`;
      if (seen.has(key)) continue;
      seen.add(key);
      entries.push(entry);
    }
    if (threepid.lookupThreepidInvite && threepid.storeThreepidInvite) {
      // Every lookup before any store-invite: an unreachable or untrusted identity server for a
      // later entry then fails the request before any invite is stored (and mailed) for an earlier one.
      // What remains: a store-invite failing after an earlier one succeeded still leaves that
      // earlier invite at its identity server, which has no call to withdraw it.
      const found = [];
      for (const entry of entries) found.push(await threepid.lookupThreepidInvite(entry));
      for (let i = 0; i < entries.length; i++) {
        const f = found[i]!;
        prepared.push(f.kind === "user" ? f : await threepid.storeThreepidInvite(entries[i]!, ctx));
      }
    } else {
      for (const entry of entries) prepared.push(await threepid.prepareThreepidInvite(entry, ctx));
    }
  }

  for (const pr of prepared) {
    if (pr.kind === "user") {
      if (invited.has(pr.userId) || pr.userId === creator) continue;
      const content: Record<string, unknown> = { membership: "invite", ...(await profileContent(rooms, pr.userId)) };
      add({ type: "m.room.member", stateKey: pr.userId, sender: creator, content });
      invited.add(pr.userId);
    } else {
      add({ type: "m.room.third_party_invite", stateKey: pr.token, sender: creator, content: pr.content });
    }
  }

  const stored = await rooms.deps.rooms.withRoomWrite(roomId, async (tx) => {
    if (tx.room) throw new MatrixError("M_ROOM_IN_USE", "Room ID collision", 400);
    await tx.insertRoom({ roomId, roomVersion, creator, createdTs: now });
    if (alias) {
      try {
        await tx.insertAlias({ alias, roomId, creator, now });
      } catch (e) {
        if (isUniqueViolation(e)) throw new MatrixError("M_ROOM_IN_USE", "Room alias already taken", 400);
        throw e;
      }
    }
    return tx.append(chain.built);
  });
  rooms.deps.events.announce(stored);
  if (threepid?.rememberThirdPartyInvite && req.invite_3pid) {
    for (let i = 0; i < prepared.length; i++) {
      const pr = prepared[i]!;
      const entry = entries[i]!;
      if (pr.kind === "third_party") await threepid.rememberThirdPartyInvite(roomId, creator, entry, pr.token).catch(() => undefined);
    }
  }
  return { room_id: roomId };
}
