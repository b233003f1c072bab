/**
 * Endpoint descriptors: every HTTP endpoint Beckon serves or calls is described once
 * here (method, path template, auth kind, rate limiting, body validator, request and
 * response types). Servers register routes from them; the SDK builds calls from them;
 * the fuzzer walks them.
 *
 * @example
 * export const inviteUser = endpoint<InviteUserRequest, {}>({
 *   id: "client.rooms.invite", api: "client", method: "POST",
 *   path: "/_matrix/client/v3/rooms/{roomId}/invite", auth: "user", rateLimited: true,
 *   body: v.object({ user_id: v.string() }),
 * });
 * buildPath(inviteUser, { roomId: "!a:b" }); // "/_matrix/client/v3/rooms/!a%3Ab/invite"
 */
import type { Validator } from "../validate.js";

export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";

/**
 * Who may call:
 * - `none`: anyone;
 * - `user`: a Client-Server access token (401 `M_MISSING_TOKEN` / `M_UNKNOWN_TOKEN`);
 * - `identity`: an identity-server token (401 `M_UNAUTHORIZED`), subject to terms;
 * - `identity-no-terms`: an identity-server token, not blocked by unsigned terms;
 * - `server`: an X-Matrix signed request from another server;
 * - `signed-content`: no transport auth, the body carries signatures (onbind);
 * - `server-or-session`: an X-Matrix signature from the homeserver of the user concerned, or
 *   proof in the body (IS `3pid/unbind`: `sid` + `client_secret` of a validated session).
 */
export type AuthKind = "none" | "user" | "identity" | "identity-no-terms" | "server" | "signed-content" | "server-or-session";

export type Api = "client" | "identity" | "federation" | "key" | "wellknown";

/** Phantom type carriers: descriptors keep their request/response types for the SDK. */
declare const REQ: unique symbol;
declare const RES: unique symbol;

export interface EndpointDescriptor<Req = unknown, Res = unknown, Query = unknown> {
  /** Stable id, `<api>.<family>.<name>`. */
  readonly id: string;
  readonly api: Api;
  readonly method: HttpMethod;
  /** Path template with `{param}` segments, e.g. `/_matrix/client/v3/rooms/{roomId}/invite`. */
  readonly path: string;
  /**
   * Other paths served by the same handler (`r0`, `unstable`, v1). An alias may omit trailing
   * `{param}`s of `path`; the handler then treats them as the empty string (e.g. the
   * empty-state-key form of `rooms/{roomId}/state/{eventType}/{stateKey}`).
   *
   * Every path is also served **with and without a trailing slash** (matrix-bot-sdk's
   * `…/state/{eventType}/`, Sydent's `/_matrix/key/v2/server/`): routers ignore trailing slashes
   * (the server-kit's Fastify does), so no alias differs from another path by a slash alone.
   * {@link servedPaths} lists the twins for routers that cannot.
   */
  readonly aliases?: readonly string[];
  readonly auth: AuthKind;
  readonly rateLimited: boolean;
  /** Validates the JSON body (POST/PUT), throwing MatrixError. Absent: no body expected. */
  readonly body?: Validator<Req>;
  /** The body may be missing or empty; the server then validates `{}` (or the query, see `sign-ed25519`). */
  readonly bodyOptional?: boolean;
  /**
   * Validates query parameters, throwing MatrixError. Values arrive as strings (arrays of strings
   * when a key repeats, as Fastify parses them).
   */
  readonly query?: Validator<Query>;
  /** What a success looks like when it is not JSON (the HTML `submitToken` page). Default `json`. */
  readonly responseKind?: "json" | "html";
  /** Validates a successful response (used by the SDK to report an incorrect response). */
  readonly response?: Validator<Res>;
  readonly [REQ]?: Req;
  readonly [RES]?: Res;
}

/** Declares an endpoint (identity function that fixes the types). */
export function endpoint<Req = unknown, Res = unknown, Query = unknown>(
  d: Omit<EndpointDescriptor<Req, Res, Query>, typeof REQ | typeof RES>,
): EndpointDescriptor<Req, Res, Query> {
  return Object.freeze(d) as EndpointDescriptor<Req, Res, Query>;
}

/** Request type of a descriptor. */
export type RequestOf<E> = E extends EndpointDescriptor<infer Req, unknown> ? Req : never;
/** Response type of a descriptor. */
export type ResponseOf<E> = E extends EndpointDescriptor<unknown, infer Res> ? Res : never;
/** Query type of a descriptor. */
export type QueryOf<E> = E extends EndpointDescriptor<unknown, unknown, infer Q> ? Q : never;

/** Every path a descriptor declares: `path`, then its aliases. */
export function allPaths(d: Pick<EndpointDescriptor, "path" | "aliases">): string[] {
  return [d.path, ...(d.aliases ?? [])];
}

/** {@link allPaths} plus each path's trailing-slash twin, for routers that do not ignore trailing slashes. */
export function servedPaths(d: Pick<EndpointDescriptor, "path" | "aliases">): string[] {
  return allPaths(d).flatMap((p) => [p, p.endsWith("/") ? p.slice(0, -1) : p + "/"]);
}

/** Names of the `{param}` segments of a path template. */
export function pathParams(template: string): string[] {
  return [...template.matchAll(/\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]!);
}

/** Fills a path template, percent-encoding every parameter (always: IDs contain `:`, `#`, `!`, `/`). */
export function buildPath(d: Pick<EndpointDescriptor, "path"> | string, params: Record<string, string> = {}): string {
  const template = typeof d === "string" ? d : d.path;
  return template.replace(/\{([A-Za-z0-9_]+)\}/g, (_m, name: string) => {
    const value = params[name];
    if (value === undefined) throw new TypeError(`missing path parameter ${name}`);
    return encodeURIComponent(value);
  });
}

/** The path template in Fastify's syntax (`:param`). */
export function toRoutePattern(template: string): string {
  return template.replace(/\{([A-Za-z0-9_]+)\}/g, ":$1");
}
