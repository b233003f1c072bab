/**
 * Local adjustments to protocol descriptors before registering them.
 *
 * The kit's Fastify instance ignores trailing slashes, so an alias that differs from another
 * path only by a trailing `/` (the empty-state-key forms of `rooms/{roomId}/state/...`,
 * `/_matrix/key/v2/server/`) would be registered twice; it is served anyway by the slash-less
 * route. {@link slashTolerantRouter} drops such twins for every route.
 */
import { clientPaths, endpoint, v, type EndpointDescriptor } from "@beckon/protocol";
import type { Router } from "@beckon/server-kit";

export function withoutSlashTwins<D extends { readonly path: string; readonly aliases?: readonly string[] }>(d: D): D {
  const norm = (p: string) => (p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p);
  const seen = new Set<string>([norm(d.path)]);
  const aliases: string[] = [];
  for (const a of d.aliases ?? []) {
    const n = norm(a);
    if (seen.has(n)) continue;
    seen.add(n);
    aliases.push(a);
  }
  return { ...d, aliases } as D;
}

/** A router that registers each descriptor without its trailing-slash twins. */
export function slashTolerantRouter<P>(inner: Router<P>): Router<P> {
  return {
    add(d, handler) {
      inner.add(withoutSlashTwins(d), handler);
    },
  };
}

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
