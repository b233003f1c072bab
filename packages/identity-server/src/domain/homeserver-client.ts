/** How the identity server reaches homeservers (userinfo, server keys, onbind). */

export interface HomeserverResponse {
  status: number;
  text: string;
  /** Parsed JSON body, or undefined when it is not JSON. */
  json(): unknown;
}

/** Thrown when a homeserver cannot be reached (blocked address, DNS, refused, timeout, too large). */
export class HomeserverUnreachable extends Error {
  override name = "HomeserverUnreachable";
  constructor(
    message: string,
    readonly kind: "blocked" | "timeout" | "network" | "too_large" | "tls" | "invalid",
  ) {
    super(message);
  }
}

export interface HomeserverClient {
  /**
   * A request to `serverName` (resolved through the explicit `homeservers` map, else Matrix
   * server discovery) at `path` (with query). Throws {@link HomeserverUnreachable}.
   */
  request(
    serverName: string,
    path: string,
    init?: { method?: "GET" | "POST" | "PUT"; body?: unknown; timeoutMs?: number; signal?: AbortSignal },
  ): Promise<HomeserverResponse>;
}
