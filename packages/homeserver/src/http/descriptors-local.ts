/**
 * Endpoints the homeserver serves that `@beckon/protocol` does not describe yet.
 */
import { clientPaths, endpoint, v, type EndpointDescriptor } from "@beckon/protocol";

// ---------------------------------------------------------------------------------------
// Endpoints matrix-js-sdk's `startClient` needs that `@beckon/protocol` does not describe yet.


/** `POST user/{userId}/filter` → `{filter_id}` (https://spec.matrix.org/v1.18/client-server-api/#post_matrixclientv3useruseridfilter). */
export const createFilter: EndpointDescriptor<Record<string, unknown>, { filter_id: string }> = endpoint({
  id: "client.filter.create",
  api: "client",
  method: "POST",
  ...clientPaths("/user/{userId}/filter"),
  auth: "user",
  rateLimited: false,
  body: v.anyObject(),
});

/** `GET user/{userId}/filter/{filterId}`. */
export const getFilter: EndpointDescriptor<undefined, Record<string, unknown>> = endpoint({
  id: "client.filter.get",
  api: "client",
  method: "GET",
  ...clientPaths("/user/{userId}/filter/{filterId}"),
  auth: "user",
  rateLimited: false,
});

/** `GET pushrules/` (with and without the slash): the user's push rules. */
export const getPushRules: EndpointDescriptor<undefined, Record<string, unknown>> = endpoint({
  id: "client.pushrules.get",
  api: "client",
  method: "GET",
  ...clientPaths("/pushrules/"),
  auth: "user",
  rateLimited: false,
});
