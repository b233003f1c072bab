/** `versions`, `.well-known/matrix/client`, `capabilities`. */
import { capabilities, clientVersions, wellKnownClient, supportedRoomVersions, DEFAULT_ROOM_VERSION } from "@beckon/protocol";
import type { HttpContext } from "../context.js";

const VERSIONS = ["r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11"];

export function registerDiscoveryRoutes(ctx: HttpContext): void {
  const { router } = ctx;
  router.add(clientVersions, () => ({ versions: VERSIONS, unstable_features: {} }));
  router.add(wellKnownClient, () => {
    const out: { "m.homeserver": { base_url: string }; "m.identity_server"?: { base_url: string } } = { "m.homeserver": { base_url: ctx.publicBaseUrl } };
    const is = ctx.config.identity_servers.default;
    if (is) out["m.identity_server"] = { base_url: is };
    return out;
  });
  router.add(capabilities, () => ({
    capabilities: {
      "m.room_versions": { default: DEFAULT_ROOM_VERSION, available: Object.fromEntries(supportedRoomVersions.map((v) => [v, "stable" as const])) },
      "m.change_password": { enabled: false },
      "m.3pid_changes": { enabled: false },
      "m.set_displayname": { enabled: true },
      "m.set_avatar_url": { enabled: true },
    },
  }));
}
