/**
 * Client-Server routes for 3PIDs held at identity servers and OpenID tokens
 * (https://spec.matrix.org/v1.18/client-server-api/#adding-account-administrative-contact-information):
 * `GET account/3pid`, `POST account/3pid/bind|unbind|delete` (v3, r0 and unstable — SyTest uses
 * `unstable`), `POST user/{userId}/openid/request_token`.
 */
import type { Router } from "@beckon/server-kit";
import { bindThreepid, deleteThreepid, getThreepids, requestOpenIdToken, unbindThreepid } from "@beckon/protocol";
import { defaultUserIdOf, type ThreepidDeps } from "../../domain/threepid-deps.js";
import { threepidServices } from "../../domain/threepid-services.js";
import { normalizeInviteAddress, unbindThreepid as unbindAt } from "../../domain/third-party-invites.js";
import { requestOpenidToken } from "../../domain/openid.js";

export function registerThreepidRoutes<P, DB>(router: Router<P>, deps: ThreepidDeps<DB>): void {
  const s = threepidServices(deps);
  const userOf = deps.userIdOf ?? defaultUserIdOf;

  // DECISIONS.md: HS-side 3PIDs are out of scope, so the account has none.
  router.add(getThreepids, () => ({ threepids: [] }));

  router.add(bindThreepid, async ({ body, auth }) => {
    const userId = userOf(auth);
    const is = s.identity.resolve(body.id_server);
    const assoc = await s.identity.bind(is, body.id_access_token, { sid: body.sid, client_secret: body.client_secret, mxid: userId });
    if (assoc.medium !== undefined && assoc.address !== undefined) {
      // Remembered for a later unbind without `id_server` (and for deactivation).
      await s.store.recordBind({
        user_id: userId,
        medium: assoc.medium,
        address: normalizeInviteAddress(assoc.medium, assoc.address),
        id_server: body.id_server,
        added_ts: deps.clock.now(),
      });
    } else {
      deps.logger.warn({ id_server: body.id_server }, "3pid/bind: the identity server's answer has no medium/address; binding not recorded");
    }
    return {};
  });

  const unbindHandler = async ({ body, auth }: { body: { medium: string; address: string; id_server?: string | undefined }; auth: P }) => {
    const result = await unbindAt(s, userOf(auth), body.medium, body.address, body.id_server);
    return { id_server_unbind_result: result };
  };
  router.add(unbindThreepid, unbindHandler);
  // HS-side 3PIDs are out of scope: deleting is unbinding at the identity server(s).
  router.add(deleteThreepid, unbindHandler);

  router.add(requestOpenIdToken, ({ params, auth }) => requestOpenidToken(s, userOf(auth), params.userId ?? ""));
}
