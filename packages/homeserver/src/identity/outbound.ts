/**
 * The slice of the server kit's guarded outbound HTTP client that the identity-server client
 * uses, as a structural type: the composition root passes the kit's client (which resolves DNS
 * itself, refuses private ranges unless allowed, caps time and size), tests may pass any
 * implementation with the same shape.
 */

export interface OutboundRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * The URL comes from an explicit, operator-written map (DECISIONS.md: mapped identity
   * servers are trusted as configured, loopback included).
   */
  trusted?: boolean;
}

export interface OutboundResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
  json(): unknown;
}

export interface OutboundLike {
  request(url: string, options?: OutboundRequestOptions): Promise<OutboundResponse>;
}

/** The kinds of failure the kit's `OutboundError` reports. */
export type OutboundErrorKind = "blocked" | "timeout" | "network" | "too_large" | "tls";

/** The failure kind of an error thrown by an outbound client, or undefined when it is something else. */
export function outboundErrorKind(e: unknown): OutboundErrorKind | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const kind = (e as { kind?: unknown }).kind;
  if (kind === "blocked" || kind === "timeout" || kind === "network" || kind === "too_large" || kind === "tls") return kind;
  const name = (e as { name?: unknown }).name;
  // An AbortSignal timeout (fetch-based clients) is a timeout too.
  if (name === "TimeoutError") return "timeout";
  return undefined;
}
