/**
 * One set of 3PID services per deps object (identity-server client, store, in-process
 * waiters), shared by the API the core calls and the routes, so that in-process caches and
 * waiters are shared too. Correctness never depends on them: the database keys decide.
 */
import type { Kysely } from "kysely";
import { createIdentityClient, type IdentityClient } from "../identity/client.js";
import { ThreepidStore, type ThreepidDatabase } from "./threepid-storage.js";
import type { ThreepidDeps } from "./threepid-deps.js";

export interface ThreepidServices {
  deps: ThreepidDeps<unknown>;
  store: ThreepidStore;
  identity: IdentityClient;
  /** In-flight 3PID invites of this process, by dedupe key. */
  inflight: Map<string, Promise<void>>;
}

const cache = new WeakMap<object, ThreepidServices>();

export function threepidServices<DB>(deps: ThreepidDeps<DB>): ThreepidServices {
  const hit = cache.get(deps);
  if (hit) return hit;
  const d = deps as unknown as ThreepidDeps<unknown>;
  const services: ThreepidServices = {
    deps: d,
    store: new ThreepidStore(deps.db as unknown as Kysely<ThreepidDatabase>),
    identity: createIdentityClient({
      outbound: deps.outbound,
      trust: {
        map: deps.config.identityServers.map,
        onlyMapped: deps.config.identityServers.onlyMapped ?? false,
        allowPrivate: deps.config.allowPrivate ?? false,
      },
      timeoutMs: deps.config.identityServerTimeoutMs ?? 10_000,
      serverName: deps.serverName,
      signingKey: deps.signingKey,
      logger: deps.logger,
    }),
    inflight: new Map(),
  };
  cache.set(deps, services);
  return services;
}
