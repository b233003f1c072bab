/**
 * Client-Server API discovery: `versions`, `.well-known/matrix/client`, `capabilities`
 * (https://spec.matrix.org/v1.18/client-server-api/#server-discovery).
 */
import { v, type Infer } from "../validate.js";
import { clientPaths } from "./common.js";
import { endpoint } from "./descriptor.js";

export const vClientVersionsResponse = v.object({
  versions: v.array(v.string()),
  unstable_features: v.optional(v.record(v.boolean())),
});
export type ClientVersionsResponse = Infer<typeof vClientVersionsResponse>;
/** `GET /_matrix/client/versions` (auth optional since v1.10; we never require it). */
export const clientVersions = endpoint<undefined, ClientVersionsResponse>({
  id: "client.discovery.versions",
  api: "client",
  method: "GET",
  path: "/_matrix/client/versions",
  auth: "none",
  rateLimited: false,
  response: vClientVersionsResponse,
});

export const vWellKnownClientResponse = v.object({
  "m.homeserver": v.object({ base_url: v.string() }),
  "m.identity_server": v.optional(v.object({ base_url: v.string() })),
});
export type WellKnownClientResponse = Infer<typeof vWellKnownClientResponse>;
export const wellKnownClient = endpoint<undefined, WellKnownClientResponse>({
  id: "wellknown.discovery.client",
  api: "wellknown",
  method: "GET",
  path: "/.well-known/matrix/client",
  auth: "none",
  rateLimited: false,
  response: vWellKnownClientResponse,
});

/** `capabilities`: `m.change_password`, `m.room_versions` (`{default, available}`), `m.3pid_changes`, … */
export interface CapabilitiesResponse {
  capabilities: {
    "m.room_versions"?: { default: string; available: Record<string, "stable" | "unstable"> };
    "m.change_password"?: { enabled: boolean };
    "m.3pid_changes"?: { enabled: boolean };
    "m.set_displayname"?: { enabled: boolean };
    "m.set_avatar_url"?: { enabled: boolean };
    [name: string]: unknown;
  };
}
export const capabilities = endpoint<undefined, CapabilitiesResponse>({
  id: "client.discovery.capabilities",
  api: "client",
  method: "GET",
  ...clientPaths("/capabilities"),
  auth: "user",
  rateLimited: false,
});

export const clientDiscoveryEndpoints = [clientVersions, wellKnownClient, capabilities] as const;
