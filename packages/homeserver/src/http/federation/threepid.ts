/**
 * Federation-side routes of the 3PID flow: `POST|PUT /_matrix/federation/v1/3pid/onbind`
 * (unauthenticated: the invites carry the identity server's signatures; Synapse and Sydent use
 * POST, the spec PUT) and `GET /_matrix/federation/v1/openid/userinfo`.
 */
import type { Router } from "@beckon/server-kit";
import { onbindPost, onbindPut } from "@beckon/protocol";
import type { ThreepidDeps } from "../../domain/threepid-deps.js";
import { threepidServices } from "../../domain/threepid-services.js";
import { handleOnbind } from "../../domain/onbind.js";
import { openidUserinfo } from "../../domain/openid.js";
import { openidUserinfoLenient } from "../descriptors-threepid-local.js";

export function registerFederationRoutes<P, DB>(router: Router<P>, deps: ThreepidDeps<DB>): void {
  const s = threepidServices(deps);
  router.add(onbindPost, ({ body }) => handleOnbind(s, body));
  router.add(onbindPut, ({ body }) => handleOnbind(s, body));
  router.add(openidUserinfoLenient, ({ query }) => openidUserinfo(s, query.access_token));
}
