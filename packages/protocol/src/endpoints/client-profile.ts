/**
 * Client-Server API profiles (https://spec.matrix.org/v1.18/client-server-api/#profiles).
 * `GET` needs no token (servers may require one; we do not).
 */
import { v, type Infer } from "../validate.js";
import { clientPaths, vEmpty, type EmptyObject } from "./common.js";
import { endpoint } from "./descriptor.js";

export const vProfileResponse = v.object({
  displayname: v.nullable(v.string()),
  avatar_url: v.nullable(v.string()),
});
export type ProfileResponse = Infer<typeof vProfileResponse>;
export const getProfile = endpoint<undefined, ProfileResponse>({
  id: "client.profile.get",
  api: "client",
  method: "GET",
  ...clientPaths("/profile/{userId}"),
  auth: "none",
  rateLimited: false,
  response: vProfileResponse,
});

export const vDisplayName = v.object({ displayname: v.nullable(v.string({ maxLength: 256 })) });
export type DisplayNameBody = Infer<typeof vDisplayName>;
export const getDisplayName = endpoint<undefined, DisplayNameBody>({
  id: "client.profile.get_displayname",
  api: "client",
  method: "GET",
  ...clientPaths("/profile/{userId}/displayname"),
  auth: "none",
  rateLimited: false,
  response: vDisplayName,
});
export const setDisplayName = endpoint<DisplayNameBody, EmptyObject>({
  id: "client.profile.set_displayname",
  api: "client",
  method: "PUT",
  ...clientPaths("/profile/{userId}/displayname"),
  auth: "user",
  rateLimited: true,
  body: vDisplayName,
  response: vEmpty,
});

/** `avatar_url` is an `mxc://` URI (not checked here: servers may be stricter). */
export const vAvatarUrl = v.object({ avatar_url: v.nullable(v.string({ maxLength: 2048 })) });
export type AvatarUrlBody = Infer<typeof vAvatarUrl>;
export const getAvatarUrl = endpoint<undefined, AvatarUrlBody>({
  id: "client.profile.get_avatar_url",
  api: "client",
  method: "GET",
  ...clientPaths("/profile/{userId}/avatar_url"),
  auth: "none",
  rateLimited: false,
  response: vAvatarUrl,
});
export const setAvatarUrl = endpoint<AvatarUrlBody, EmptyObject>({
  id: "client.profile.set_avatar_url",
  api: "client",
  method: "PUT",
  ...clientPaths("/profile/{userId}/avatar_url"),
  auth: "user",
  rateLimited: true,
  body: vAvatarUrl,
  response: vEmpty,
});

export const clientProfileEndpoints = [getProfile, getDisplayName, setDisplayName, getAvatarUrl, setAvatarUrl] as const;
