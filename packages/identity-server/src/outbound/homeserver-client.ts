/**
 * How the identity server reaches homeservers: server-kit's guarded outbound client (addresses
 * checked after DNS and pinned, private/loopback/transitional ranges refused unless allowed,
 * timeouts, size caps) behind server-kit's Matrix server discovery (the explicit `homeservers`
 * map first, trusted as configured; else `.well-known`, SRV, port 8448 over https).
 */
import { createOutboundClient, createServerResolver, isOutboundError, type Clock } from "@beckon/server-kit";
import type { Logger } from "pino";
import { HomeserverUnreachable, type HomeserverClient } from "../domain/homeserver-client.js";

export interface HomeserverClientOptions {
  /** server name → base URL (trusted: private addresses allowed). */
  map?: Readonly<Record<string, string>>;
  allowPrivate?: boolean;
  /** Test only (logged loudly by the caller). */
  insecureSkipTlsVerify?: boolean;
  timeoutMs?: number;
  maxResponseBytes?: number;
  logger?: Logger;
  clock?: Clock;
}

export function createHomeserverClient(options: HomeserverClientOptions = {}): HomeserverClient & { close(): void } {
  const outbound = createOutboundClient({
    allowPrivate: options.allowPrivate ?? false,
    insecureSkipTlsVerify: options.insecureSkipTlsVerify ?? false,
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.maxResponseBytes !== undefined ? { maxResponseBytes: options.maxResponseBytes } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    userAgent: "Beckon-IS",
  });
  const resolver = createServerResolver({
    outbound,
    map: options.map ?? {},
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  return {
    async request(serverName, path, init = {}) {
      const body = init.body === undefined ? undefined : JSON.stringify(init.body);
      try {
        const res = await resolver.request(serverName, path, {
          method: init.method ?? "GET",
          headers: body === undefined ? { accept: "application/json" } : { accept: "application/json", "content-type": "application/json" },
          ...(body !== undefined ? { body } : {}),
          ...(init.timeoutMs !== undefined ? { timeoutMs: init.timeoutMs } : {}),
          ...(init.signal ? { signal: init.signal } : {}),
          followRedirects: false,
        });
        return {
          status: res.status,
          text: res.text,
          json() {
            try {
              return res.json();
            } catch {
              return undefined;
            }
          },
        };
      } catch (e) {
        if (isOutboundError(e)) throw new HomeserverUnreachable(e.message, e.kind);
        throw new HomeserverUnreachable(e instanceof Error ? e.message : String(e), "network");
      }
    },
    close: () => outbound.close(),
  };
}
