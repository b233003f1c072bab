/**
 * Typed errors of the SDK: the request outcomes libQuotient calls job statuses, as three classes
 * and one `kind` enum.
 *
 * - {@link MatrixCallError} (a {@link MatrixError}): the server answered with a Matrix error body
 *   (`errcode`, `error`, HTTP status, extra fields such as `retry_after_ms`, `soft_logout`, `mxid`).
 * - {@link HttpError}: the server answered something that is not a Matrix error (a 502 HTML page,
 *   or a 2xx that is not JSON or lacks expected keys: `kind: "incorrect-response"`).
 * - {@link ConnectionError}: no answer: network failure, per-attempt timeout, overall deadline,
 *   abort by the caller, or cancellation by a queue.
 *
 * Messages and URLs are redacted (no access tokens, no `private_key`).
 *
 * @example
 * try { await client.joinRoom("#room:example.org"); }
 * catch (e) {
 *   if (errorKind(e) === "too-many-requests") console.log("retry in", retryAfterMs(e));
 *   if (e instanceof MatrixCallError && e.errcode === "M_FORBIDDEN") console.log(e.error);
 * }
 */
import { MatrixError } from "@beckon/protocol";

export { MatrixError, isMatrixError } from "@beckon/protocol";

/** The kind of failure, after libQuotient's job statuses. */
export type ErrorKind =
  | "network" // the connection failed
  | "timeout" // one attempt took longer than `timeoutMs`
  | "deadline" // the whole call (all attempts, waits and queueing) took longer than `deadlineMs`
  | "aborted" // the caller's AbortSignal fired
  | "cancelled" // a queue with policy CancelFutureIfFailed dropped the call
  | "unauthorised" // 401, M_UNKNOWN_TOKEN / M_MISSING_TOKEN / M_UNAUTHORIZED (see `softLogout`)
  | "content-access" // 403
  | "not-found" // 404 M_NOT_FOUND
  | "incorrect-request" // 400 and other 4xx
  | "incorrect-response" // a 2xx that is not JSON or misses expected keys
  | "too-many-requests" // 429 M_LIMIT_EXCEEDED (see `retryAfterMs`)
  | "not-implemented" // M_UNRECOGNIZED, or a bare 404/405
  | "unsupported-room-version" // M_UNSUPPORTED_ROOM_VERSION / M_INCOMPATIBLE_ROOM_VERSION
  | "network-auth-required" // 511 (a captive portal)
  | "user-consent-required" // M_CONSENT_NOT_GIVEN (see `extra.consent_uri`)
  | "cannot-leave-room" // M_CANNOT_LEAVE_SERVER_NOTICE_ROOM
  | "user-deactivated" // M_USER_DEACTIVATED
  | "server-error" // 5xx
  | "unknown";

/** What the request was, for messages (the URL is already redacted). */
export interface RequestInfo {
  readonly method: string;
  readonly url: string;
}

function where(req: RequestInfo | undefined): string {
  return req ? ` (${req.method} ${req.url})` : "";
}

/** Classifies a Matrix error body by errcode, then by HTTP status. */
export function kindOfMatrixError(errcode: string, status: number): ErrorKind {
  switch (errcode) {
    case "M_UNKNOWN_TOKEN":
    case "M_MISSING_TOKEN":
    case "M_UNAUTHORIZED":
      return "unauthorised";
    case "M_LIMIT_EXCEEDED":
      return "too-many-requests";
    case "M_UNRECOGNIZED":
      return "not-implemented";
    case "M_UNSUPPORTED_ROOM_VERSION":
    case "M_INCOMPATIBLE_ROOM_VERSION":
      return "unsupported-room-version";
    case "M_CONSENT_NOT_GIVEN":
      return "user-consent-required";
    case "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM":
      return "cannot-leave-room";
    case "M_USER_DEACTIVATED":
      return "user-deactivated";
    case "M_NOT_FOUND":
      return "not-found";
  }
  return kindOfStatus(status, true);
}

/** Classifies an HTTP failure status. `matrix`: the body was a Matrix error. */
export function kindOfStatus(status: number, matrix: boolean): ErrorKind {
  if (status === 401) return "unauthorised";
  if (status === 403) return "content-access";
  if (status === 404) return matrix ? "not-found" : "not-implemented";
  if (status === 405) return "not-implemented";
  if (status === 429) return "too-many-requests";
  if (status === 511) return "network-auth-required";
  if (status >= 400 && status < 500) return "incorrect-request";
  if (status >= 500) return "server-error";
  return "unknown";
}

/**
 * A Matrix error answered by a server. `instanceof MatrixError` holds; `error` is the
 * server's text, `message` adds the errcode and the (redacted) request.
 */
export class MatrixCallError extends MatrixError {
  readonly kind: ErrorKind;
  /** The server's human-readable `error` text (redacted). */
  readonly error: string;
  readonly request: RequestInfo | undefined;
  /** For 429: how long the server asked us to wait (from `retry_after_ms` or `Retry-After`). */
  readonly retryAfterMs: number | undefined;

  constructor(errcode: string, error: string, status: number, extra: Record<string, unknown>, request?: RequestInfo, retryAfterMs?: number) {
    super(errcode, error, status, extra);
    this.message = `${errcode}: ${error || "(no message)"} [${status}]${where(request)}`;
    this.error = error;
    this.kind = kindOfMatrixError(errcode, status);
    this.request = request;
    this.retryAfterMs = retryAfterMs ?? (typeof extra["retry_after_ms"] === "number" ? extra["retry_after_ms"] : undefined);
  }

  /** `soft_logout: true` on a 401: the session can be refreshed by logging in again with the same device. */
  get softLogout(): boolean {
    return this.extra["soft_logout"] === true;
  }

  override toJSON(): { errcode: string; error: string; [k: string]: unknown } {
    return { ...this.extra, errcode: this.errcode, error: this.error };
  }
}

/** A failure answered with something that is not a Matrix error, or an unusable 2xx body. */
export class HttpError extends Error {
  override name = "HttpError";
  readonly kind: ErrorKind;
  readonly status: number;
  /** The start of the body (redacted, at most 512 characters). */
  readonly body: string;
  readonly request: RequestInfo | undefined;
  readonly retryAfterMs: number | undefined;
  /** The parsed body when it was JSON without an errcode (e.g. a user-interactive-auth 401 `{flows, session}`). */
  readonly json: unknown;

  constructor(status: number, body: string, request?: RequestInfo, opts: { kind?: ErrorKind; detail?: string; retryAfterMs?: number; json?: unknown } = {}) {
    const kind = opts.kind ?? kindOfStatus(status, false);
    super(`${kind === "incorrect-response" ? "incorrect response" : "HTTP error"} ${status}${opts.detail ? `: ${opts.detail}` : ""}${where(request)}`);
    this.kind = kind;
    this.status = status;
    this.body = body.slice(0, 512);
    this.request = request;
    this.retryAfterMs = opts.retryAfterMs;
    this.json = opts.json;
  }
}

export type ConnectionErrorKind = "network" | "timeout" | "deadline" | "aborted" | "cancelled";

/** No answer: network failure, timeout, deadline, abort, or cancellation by a queue. */
export class ConnectionError extends Error {
  override name = "ConnectionError";
  readonly kind: ConnectionErrorKind;
  readonly request: RequestInfo | undefined;
  /**
   * False only when the request certainly never reached the server (connection refused, DNS
   * failure, aborted before sending); then even a non-idempotent request may be retried.
   */
  readonly maybeSent: boolean;

  constructor(kind: ConnectionErrorKind, detail: string, request?: RequestInfo, opts: { maybeSent?: boolean; cause?: unknown } = {}) {
    super(`${kind === "network" ? "network error" : kind}: ${detail}${where(request)}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.kind = kind;
    this.request = request;
    this.maybeSent = opts.maybeSent ?? true;
  }
}

/** The {@link ErrorKind} of anything thrown by the SDK (`unknown` for foreign errors). */
export function errorKind(e: unknown): ErrorKind {
  if (e instanceof MatrixCallError || e instanceof HttpError || e instanceof ConnectionError) return e.kind;
  if (e instanceof MatrixError) return kindOfMatrixError(e.errcode, e.status);
  return "unknown";
}

/** The retry delay a 429 asked for, if any. */
export function retryAfterMs(e: unknown): number | undefined {
  if (e instanceof MatrixCallError || e instanceof HttpError) return e.retryAfterMs;
  return undefined;
}

/** The HTTP status of an answered failure. */
export function errorStatus(e: unknown): number | undefined {
  if (e instanceof MatrixError || e instanceof HttpError) return e.status;
  return undefined;
}

/** The errcode of a Matrix error, if `e` is one. */
export function errcodeOf(e: unknown): string | undefined {
  return e instanceof MatrixError ? e.errcode : undefined;
}
