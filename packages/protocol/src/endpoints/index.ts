/**
 * Every endpoint Beckon serves or calls, one file per family; {@link allEndpoints} lists them
 * all (route registration, the fuzzer).
 */
import type { EndpointDescriptor } from "./descriptor.js";
import { clientAccountEndpoints } from "./client-account.js";
import { clientAccountDataEndpoints } from "./client-account-data.js";
import { clientDiscoveryEndpoints } from "./client-discovery.js";
import { clientMembershipEndpoints } from "./client-membership.js";
import { clientProfileEndpoints } from "./client-profile.js";
import { clientRoomEndpoints } from "./client-rooms.js";
import { clientSyncEndpoints } from "./client-sync.js";
import { clientThreepidEndpoints } from "./client-3pid.js";
import { federationEndpoints } from "./federation.js";
import { identityEndpoints } from "./identity.js";

export * from "./descriptor.js";
export * from "./common.js";
export * from "./identity.js";
export * from "./client-discovery.js";
export * from "./client-account.js";
export * from "./client-account-data.js";
export * from "./client-profile.js";
export * from "./client-rooms.js";
export * from "./client-membership.js";
export * from "./client-sync.js";
export * from "./client-3pid.js";
export * from "./federation.js";

/** Every Client-Server endpoint (incl. `.well-known` and Synapse's admin registration). */
export const clientEndpoints: readonly EndpointDescriptor[] = [
  ...clientDiscoveryEndpoints,
  ...clientAccountEndpoints,
  ...clientAccountDataEndpoints,
  ...clientProfileEndpoints,
  ...clientRoomEndpoints,
  ...clientMembershipEndpoints,
  ...clientSyncEndpoints,
  ...clientThreepidEndpoints,
];

/** Every endpoint descriptor: client, identity, federation and key APIs. */
export const allEndpoints: readonly EndpointDescriptor[] = [...clientEndpoints, ...identityEndpoints, ...federationEndpoints];
