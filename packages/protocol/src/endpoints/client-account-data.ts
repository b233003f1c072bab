/**
 * Client-Server API account data (https://spec.matrix.org/v1.18/client-server-api/#client-config):
 * clients keep `m.identity_server` (`{base_url}`) and `m.accepted_terms` (`{accepted: [url…]}`)
 * there, which the invite-by-email flow reads and appends to.
 */
import { v, type Infer } from "../validate.js";
import { clientPaths, vEmpty, type EmptyObject } from "./common.js";
import { endpoint } from "./descriptor.js";

/** Account data event types that the 3PID flows use. */
export const ACCOUNT_DATA_IDENTITY_SERVER = "m.identity_server";
export const ACCOUNT_DATA_ACCEPTED_TERMS = "m.accepted_terms";

/** `m.identity_server`: `base_url` null means "use no identity server". */
export const vIdentityServerAccountData = v.object({ base_url: v.nullable(v.string({ maxLength: 2048 })) });
export type IdentityServerAccountData = Infer<typeof vIdentityServerAccountData>;
/** `m.accepted_terms`: every terms URL the user accepted, on any identity server. */
export const vAcceptedTermsAccountData = v.object({ accepted: v.optional(v.array(v.string({ maxLength: 2048 }))) });
export type AcceptedTermsAccountData = Infer<typeof vAcceptedTermsAccountData>;

/** 404 `M_NOT_FOUND` when unset. `{userId}` must be the caller (403 otherwise). */
export const getAccountData = endpoint<undefined, Record<string, unknown>>({
  id: "client.account_data.get",
  api: "client",
  method: "GET",
  ...clientPaths("/user/{userId}/account_data/{type}"),
  auth: "user",
  rateLimited: false,
  response: v.anyObject(),
});

/** Body = the content; replaces what was there. */
export const setAccountData = endpoint<Record<string, unknown>, EmptyObject>({
  id: "client.account_data.set",
  api: "client",
  method: "PUT",
  ...clientPaths("/user/{userId}/account_data/{type}"),
  auth: "user",
  rateLimited: true,
  body: v.anyObject(),
  response: vEmpty,
});

export const getRoomAccountData = endpoint<undefined, Record<string, unknown>>({
  id: "client.account_data.get_room",
  api: "client",
  method: "GET",
  ...clientPaths("/user/{userId}/rooms/{roomId}/account_data/{type}"),
  auth: "user",
  rateLimited: false,
  response: v.anyObject(),
});

export const setRoomAccountData = endpoint<Record<string, unknown>, EmptyObject>({
  id: "client.account_data.set_room",
  api: "client",
  method: "PUT",
  ...clientPaths("/user/{userId}/rooms/{roomId}/account_data/{type}"),
  auth: "user",
  rateLimited: true,
  body: v.anyObject(),
  response: vEmpty,
});

export const clientAccountDataEndpoints = [getAccountData, setAccountData, getRoomAccountData, setRoomAccountData] as const;
