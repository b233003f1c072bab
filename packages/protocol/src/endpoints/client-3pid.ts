/**
 * Client-Server API 3PIDs held at identity servers
 * (https://spec.matrix.org/v1.18/client-server-api/#adding-account-administrative-contact-information).
 * HS-side 3PIDs are out of scope (DECISIONS.md): `GET account/3pid` lists none for now.
 */
import { v, type Infer } from "../validate.js";
import { clientPaths, vAddress, vClientSecret, vEmpty, vIdServer, vMedium, vSid, type EmptyObject } from "./common.js";
import { vUnbindResult, type UnbindResultResponse } from "./client-account.js";
import { endpoint } from "./descriptor.js";

export const vThreepidsResponse = v.object({
  threepids: v.array(
    v.object({ medium: v.string(), address: v.string(), validated_at: v.integer({ min: 0 }), added_at: v.integer({ min: 0 }) }),
  ),
});
export type ThreepidsResponse = Infer<typeof vThreepidsResponse>;
export const getThreepids = endpoint<undefined, ThreepidsResponse>({
  id: "client.3pid.list",
  api: "client",
  method: "GET",
  ...clientPaths("/account/3pid", { unstable: true }),
  auth: "user",
  rateLimited: false,
  response: vThreepidsResponse,
});

export const vBindThreepidRequest = v.object({
  client_secret: vClientSecret,
  id_server: vIdServer,
  id_access_token: v.string({ minLength: 1, maxLength: 1024 }),
  sid: vSid,
});
export type BindThreepidRequest = Infer<typeof vBindThreepidRequest>;
/** The HS calls IS `3pid/bind` with `{sid, client_secret, mxid}` and records the binding. */
export const bindThreepid = endpoint<BindThreepidRequest, EmptyObject>({
  id: "client.3pid.bind",
  api: "client",
  method: "POST",
  ...clientPaths("/account/3pid/bind", { unstable: true }),
  auth: "user",
  rateLimited: true,
  body: vBindThreepidRequest,
  response: vEmpty,
});

export const vUnbindThreepidRequest = v.object({ medium: vMedium, address: vAddress, id_server: v.optional(vIdServer) });
export type UnbindThreepidRequest = Infer<typeof vUnbindThreepidRequest>;
/** The HS signs the IS `3pid/unbind` with X-Matrix (`destination_is`); no `id_access_token`. */
export const unbindThreepid = endpoint<UnbindThreepidRequest, UnbindResultResponse>({
  id: "client.3pid.unbind",
  api: "client",
  method: "POST",
  ...clientPaths("/account/3pid/unbind", { unstable: true }),
  auth: "user",
  rateLimited: true,
  body: vUnbindThreepidRequest,
  response: vUnbindResult,
});

/** Unbind at the IS (as above), then forget the local 3PID. */
export const deleteThreepid = endpoint<UnbindThreepidRequest, UnbindResultResponse>({
  id: "client.3pid.delete",
  api: "client",
  method: "POST",
  ...clientPaths("/account/3pid/delete", { unstable: true }),
  auth: "user",
  rateLimited: true,
  body: vUnbindThreepidRequest,
  response: vUnbindResult,
});

export const clientThreepidEndpoints = [getThreepids, bindThreepid, unbindThreepid, deleteThreepid] as const;
