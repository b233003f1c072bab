/**
 * The invitee's side of a third-party invite.
 *
 * - After binding the address at the identity server, the homeserver receives `onbind` and
 *   invites the user: {@link acceptThirdPartyInviteBySync} waits for that invite in `/sync` and joins.
 * - Without binding: the invite mail carries a sign URL (`…/sign-ed25519?token=…&private_key=…`);
 *   {@link acceptThirdPartyInviteWithSignUrl} obtains `third_party_signed` from it and joins with it.
 *
 * @example
 * const { roomId } = await acceptThirdPartyInviteWithSignUrl(bob, roomIdFromMailLink, signUrlFromMail);
 */
import type { RoomId } from "@beckon/protocol";
import { signWithUrl } from "../api/identity-client.js";
import type { MatrixClient } from "../api/matrix-client.js";
import { ConnectionError } from "../http/errors.js";
import type { CallOptions } from "../http/transport.js";
import { syncLoop } from "./sync.js";

export interface WaitForInviteOptions {
  /** Only an invite to this room counts (default: the first invite seen). */
  readonly roomId?: string;
  readonly signal?: AbortSignal;
  /** Give up after this long (rejects with a `ConnectionError` of kind `deadline`). */
  readonly timeoutMs?: number;
  /** Long-poll timeout of each sync (default 30 s). */
  readonly pollMs?: number;
}

/** Waits in `/sync` until the user is invited (to `roomId`, or to any room); resolves with the room ID. */
export async function waitForInvite(client: MatrixClient, opts: WaitForInviteOptions = {}): Promise<string> {
  const ctrl = new AbortController();
  const onAbort = (): void => ctrl.abort(opts.signal?.reason);
  if (opts.signal?.aborted) ctrl.abort(opts.signal.reason);
  else opts.signal?.addEventListener("abort", onAbort, { once: true });
  let timedOut = false;
  const clock = client.transport.clock;
  const timer =
    opts.timeoutMs !== undefined
      ? clock.setTimeout(() => {
          timedOut = true;
          ctrl.abort();
        }, opts.timeoutMs)
      : undefined;
  try {
    for await (const batch of syncLoop(client, { signal: ctrl.signal, timeoutMs: opts.pollMs ?? 30_000 })) {
      const invited = Object.keys(batch.rooms?.invite ?? {});
      const hit = opts.roomId === undefined ? invited[0] : invited.find((r) => r === opts.roomId);
      if (hit) return hit;
      // Already joined (e.g. accepted elsewhere) also ends the wait.
      if (opts.roomId !== undefined && batch.rooms?.join && opts.roomId in batch.rooms.join) return opts.roomId;
    }
    throw timedOut
      ? new ConnectionError("deadline", `no invite within ${opts.timeoutMs} ms`, undefined, { maybeSent: false })
      : new ConnectionError("aborted", "stopped waiting for the invite", undefined, { maybeSent: false, cause: opts.signal?.reason });
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

/** Waits for the invite (delivered by `onbind` after the address was bound), then joins. */
export async function acceptThirdPartyInviteBySync(client: MatrixClient, roomId: string, opts: WaitForInviteOptions & CallOptions = {}): Promise<{ roomId: RoomId }> {
  await waitForInvite(client, { ...opts, roomId });
  const r = await client.join(roomId, opts);
  return { roomId: r.room_id };
}

/**
 * Joins with `third_party_signed` obtained from the invite mail's sign URL (POST, `mxid`
 * appended, no auth — as matrix-js-sdk does). The homeserver checks the signature against the
 * room's `m.room.third_party_invite` keys and their validity, so no bind is needed.
 */
export async function acceptThirdPartyInviteWithSignUrl(
  client: MatrixClient,
  roomIdOrAlias: string,
  signUrl: string,
  opts: CallOptions & { via?: string[] } = {},
): Promise<{ roomId: RoomId }> {
  const me = client.userId ?? (await client.whoami(opts)).user_id;
  const signed = await signWithUrl(client.transport, signUrl, me, opts);
  const r = await client.join(roomIdOrAlias, {
    ...opts,
    thirdPartySigned: { sender: signed.sender, mxid: signed.mxid, token: signed.token, signatures: signed.signatures },
  });
  return { roomId: r.room_id };
}
