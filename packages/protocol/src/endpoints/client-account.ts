/**
 * Client-Server API accounts and sessions: register (incl. Synapse's shared-secret admin
 * registration), login, logout, whoami, deactivate, OpenID tokens
 * (https://spec.matrix.org/v1.18/client-server-api/#client-authentication).
 */
import { isJsonObject } from "../canonical-json.js";
import { v, type Infer, type Validator } from "../validate.js";
import { clientPaths, vEmpty, vIdServer, vOpenIdToken, vUserId, type EmptyObject, type OpenIdToken } from "./common.js";
import { endpoint } from "./descriptor.js";

/** User-interactive auth data sent in a body (`auth`): `type`, `session`, stage fields. */
export const vAuthData = v.object({ type: v.optional(v.string()), session: v.optional(v.string()) });
export type AuthData = Infer<typeof vAuthData>;

/** The 401 body of a user-interactive-auth challenge (not an error: see DECISIONS.md). */
export interface UiaResponse {
  flows: { stages: string[] }[];
  session?: string;
  params?: Record<string, unknown>;
  completed?: string[];
  errcode?: string;
  error?: string;
}

export const vRegisterRequest = v.object({
  username: v.optional(v.string({ minLength: 1, maxLength: 255 })),
  password: v.optional(v.string({ maxLength: 512 })),
  auth: v.optional(vAuthData),
  device_id: v.optional(v.string({ minLength: 1, maxLength: 255 })),
  initial_device_display_name: v.optional(v.string({ maxLength: 255 })),
  inhibit_login: v.optional(v.boolean()),
  refresh_token: v.optional(v.boolean()),
});
export type RegisterRequest = Infer<typeof vRegisterRequest>;
export const vRegisterQuery = v.object({ kind: v.optional(v.literal("user", "guest")) });
export type RegisterQuery = Infer<typeof vRegisterQuery>;
export const vRegisterResponse = v.object({
  user_id: vUserId,
  access_token: v.optional(v.string()),
  device_id: v.optional(v.string()),
  home_server: v.optional(v.string()),
  expires_in_ms: v.optional(v.integer()),
  refresh_token: v.optional(v.string()),
});
export type RegisterResponse = Infer<typeof vRegisterResponse>;
/** `m.login.dummy` when registration is open; a 401 {@link UiaResponse} asks for it. */
export const register = endpoint<RegisterRequest, RegisterResponse, RegisterQuery>({
  id: "client.account.register",
  api: "client",
  method: "POST",
  ...clientPaths("/register"),
  auth: "none",
  rateLimited: true,
  body: vRegisterRequest,
  query: vRegisterQuery,
  response: vRegisterResponse,
});

/** Synapse's shared-secret registration, step 1: a nonce. */
export const adminRegisterNonce = endpoint<undefined, { nonce: string }>({
  id: "client.admin.register_nonce",
  api: "client",
  method: "GET",
  path: "/_synapse/admin/v1/register",
  auth: "none",
  rateLimited: true,
  response: v.object({ nonce: v.string() }),
});

/** Step 2: `mac` = hex HMAC-SHA1(shared secret, `nonce\0username\0password\0admin|notadmin`). */
export const vAdminRegisterRequest = v.object({
  nonce: v.string({ minLength: 1, maxLength: 255 }),
  username: v.string({ minLength: 1, maxLength: 255 }),
  password: v.string({ minLength: 1, maxLength: 512 }),
  admin: v.optional(v.boolean()),
  displayname: v.optional(v.string({ maxLength: 255 })),
  user_type: v.nullable(v.string()),
  mac: v.string({ pattern: /^[0-9a-fA-F]{1,128}$/ }),
});
export type AdminRegisterRequest = Infer<typeof vAdminRegisterRequest>;
export const adminRegister = endpoint<AdminRegisterRequest, RegisterResponse>({
  id: "client.admin.register",
  api: "client",
  method: "POST",
  path: "/_synapse/admin/v1/register",
  auth: "none",
  rateLimited: true,
  body: vAdminRegisterRequest,
  response: vRegisterResponse,
});

export interface LoginFlowsResponse {
  flows: { type: string; [k: string]: unknown }[];
}
export const loginFlows = endpoint<undefined, LoginFlowsResponse>({
  id: "client.account.login_flows",
  api: "client",
  method: "GET",
  ...clientPaths("/login"),
  auth: "none",
  rateLimited: false,
  response: v.object({ flows: v.array(v.object({ type: v.string() })) }),
});

const vIdUser = v.object({ type: v.literal("m.id.user"), user: v.string({ minLength: 1, maxLength: 255 }) });
const vIdThirdparty = v.object({ type: v.literal("m.id.thirdparty"), medium: v.string({ maxLength: 32 }), address: v.string({ maxLength: 500 }) });
const vIdPhone = v.object({ type: v.literal("m.id.phone"), country: v.string({ maxLength: 8 }), phone: v.string({ maxLength: 64 }) });
export type UserIdentifier = Infer<typeof vIdUser> | Infer<typeof vIdThirdparty> | Infer<typeof vIdPhone>;
/** `identifier` of a login: `m.id.user`, `m.id.thirdparty` or `m.id.phone` (chosen by `type`). */
export const vUserIdentifier: Validator<UserIdentifier> = v.select<UserIdentifier>((x) =>
  isJsonObject(x) && x.type === "m.id.thirdparty" ? vIdThirdparty : isJsonObject(x) && x.type === "m.id.phone" ? vIdPhone : vIdUser,
);

export const vLoginRequest = v.object({
  type: v.string({ minLength: 1, maxLength: 255 }),
  identifier: v.optional(vUserIdentifier),
  /** Deprecated form of `identifier: {type: "m.id.user", user}`. */
  user: v.optional(v.string({ maxLength: 255 })),
  password: v.optional(v.string({ maxLength: 512 })),
  token: v.optional(v.string({ maxLength: 1024 })),
  device_id: v.optional(v.string({ minLength: 1, maxLength: 255 })),
  initial_device_display_name: v.optional(v.string({ maxLength: 255 })),
  refresh_token: v.optional(v.boolean()),
});
export type LoginRequest = Infer<typeof vLoginRequest>;
export const vLoginResponse = v.object({
  user_id: vUserId,
  access_token: v.string(),
  device_id: v.string(),
  home_server: v.optional(v.string()),
  expires_in_ms: v.optional(v.integer()),
  refresh_token: v.optional(v.string()),
  well_known: v.optional(v.anyObject()),
});
export type LoginResponse = Infer<typeof vLoginResponse>;
export const login = endpoint<LoginRequest, LoginResponse>({
  id: "client.account.login",
  api: "client",
  method: "POST",
  ...clientPaths("/login"),
  auth: "none",
  rateLimited: true,
  body: vLoginRequest,
  response: vLoginResponse,
});

export const logout = endpoint<EmptyObject, EmptyObject>({
  id: "client.account.logout",
  api: "client",
  method: "POST",
  ...clientPaths("/logout"),
  auth: "user",
  rateLimited: false,
  body: vEmpty,
  bodyOptional: true,
  response: vEmpty,
});

export const logoutAll = endpoint<EmptyObject, EmptyObject>({
  id: "client.account.logout_all",
  api: "client",
  method: "POST",
  ...clientPaths("/logout/all"),
  auth: "user",
  rateLimited: false,
  body: vEmpty,
  bodyOptional: true,
  response: vEmpty,
});

export const vWhoamiResponse = v.object({ user_id: vUserId, device_id: v.optional(v.string()), is_guest: v.optional(v.boolean()) });
export type WhoamiResponse = Infer<typeof vWhoamiResponse>;
export const whoami = endpoint<undefined, WhoamiResponse>({
  id: "client.account.whoami",
  api: "client",
  method: "GET",
  ...clientPaths("/account/whoami"),
  auth: "user",
  rateLimited: false,
  response: vWhoamiResponse,
});

/** `id_server_unbind_result` of deactivate, `account/3pid/unbind` and `delete`. */
export const vUnbindResult = v.object({ id_server_unbind_result: v.literal("success", "no-support") });
export type UnbindResultResponse = Infer<typeof vUnbindResult>;

export const vDeactivateRequest = v.object({
  auth: v.optional(vAuthData),
  id_server: v.optional(vIdServer),
  erase: v.optional(v.boolean()),
});
export type DeactivateRequest = Infer<typeof vDeactivateRequest>;
/** Unbinds the account's 3PIDs at the identity servers, then deactivates. */
export const deactivate = endpoint<DeactivateRequest, UnbindResultResponse>({
  id: "client.account.deactivate",
  api: "client",
  method: "POST",
  ...clientPaths("/account/deactivate"),
  auth: "user",
  rateLimited: true,
  body: vDeactivateRequest,
  bodyOptional: true,
  response: vUnbindResult,
});

/** `{}`; `{userId}` must be the caller (403 `M_FORBIDDEN` otherwise). */
export const requestOpenIdToken = endpoint<EmptyObject, OpenIdToken>({
  id: "client.account.openid_request_token",
  api: "client",
  method: "POST",
  ...clientPaths("/user/{userId}/openid/request_token"),
  auth: "user",
  rateLimited: true,
  body: vEmpty,
  response: vOpenIdToken,
});

export const clientAccountEndpoints = [
  register,
  adminRegisterNonce,
  adminRegister,
  loginFlows,
  login,
  logout,
  logoutAll,
  whoami,
  deactivate,
  requestOpenIdToken,
] as const;
