/** What the Client-Server route files need: the domain services, built once by `app.ts`. */
import type { Router } from "@beckon/server-kit";
import type { AccountData } from "../domain/account-data.js";
import type { Accounts, Principal } from "../domain/accounts.js";
import type { ThreepidApi } from "../domain/contracts.js";
import type { Membership } from "../domain/membership.js";
import type { Rooms } from "../domain/rooms.js";
import type { Sync } from "../domain/sync.js";
import type { HomeserverConfig } from "../config.js";

export interface HttpContext {
  router: Router<Principal>;
  config: HomeserverConfig;
  serverName: string;
  publicBaseUrl: string;
  accounts: Accounts;
  accountData: AccountData;
  rooms: Rooms;
  membership: Membership;
  sync: Sync;
  threepid?: ThreepidApi & {
    rememberThirdPartyInvite?(roomId: string, sender: string, req: { medium: string; address: string }, token: string): Promise<void>;
    unbindAllForUser?(userId: string): Promise<"success" | "no-support">;
  };
  /** Rate limit by key (throws 429). */
  limit(kind: "login" | "registration" | "third_party_invites", key: string): void;
}
