/**
 * Matrix error codes and the one error type every layer throws and renders
 * (https://spec.matrix.org/v1.18/client-server-api/#standard-error-response,
 * https://spec.matrix.org/v1.18/identity-service-api/#standard-error-response).
 *
 * @example
 * throw new MatrixError("M_LIMIT_EXCEEDED", "Too many requests", 429, { retry_after_ms: 2000 });
 * // rendered as 429 {"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests","retry_after_ms":2000}
 */

/**
 * Every errcode the C-S, IS and S-S specs define (checked against matrix-spec's `content/` and
 * `data/api/` at v1.18), with its usual HTTP status. S-S adds only `M_UNABLE_TO_*_JOIN`.
 */
export const ERRCODES = {
  // Client-Server API: common
  M_FORBIDDEN: 403,
  M_UNKNOWN_TOKEN: 401,
  M_MISSING_TOKEN: 401,
  M_USER_LOCKED: 401,
  M_USER_SUSPENDED: 403,
  M_BAD_JSON: 400,
  M_NOT_JSON: 400,
  M_NOT_FOUND: 404,
  M_LIMIT_EXCEEDED: 429,
  M_UNRECOGNIZED: 404,
  M_UNKNOWN: 500,
  // Client-Server API: other
  M_UNAUTHORIZED: 401,
  M_USER_DEACTIVATED: 403,
  M_USER_IN_USE: 400,
  M_INVALID_USERNAME: 400,
  M_ROOM_IN_USE: 400,
  M_INVALID_ROOM_STATE: 400,
  M_THREEPID_IN_USE: 400,
  M_THREEPID_NOT_FOUND: 400,
  M_THREEPID_AUTH_FAILED: 400,
  M_THREEPID_DENIED: 400,
  M_THREEPID_MEDIUM_NOT_SUPPORTED: 400,
  M_SERVER_NOT_TRUSTED: 400,
  M_UNSUPPORTED_ROOM_VERSION: 400,
  M_INCOMPATIBLE_ROOM_VERSION: 400,
  M_BAD_STATE: 400,
  M_GUEST_ACCESS_FORBIDDEN: 403,
  M_CAPTCHA_NEEDED: 400,
  M_CAPTCHA_INVALID: 400,
  M_MISSING_PARAM: 400,
  M_INVALID_PARAM: 400,
  M_TOO_LARGE: 413,
  M_EXCLUSIVE: 400,
  M_RESOURCE_LIMIT_EXCEEDED: 403,
  M_CANNOT_LEAVE_SERVER_NOTICE_ROOM: 403,
  M_WEAK_PASSWORD: 400,
  M_CONSENT_NOT_GIVEN: 403,
  M_UNABLE_TO_AUTHORISE_JOIN: 400,
  M_UNABLE_TO_GRANT_JOIN: 502,
  M_WRONG_ROOM_KEYS_VERSION: 403,
  M_NOT_YET_UPLOADED: 504,
  M_CANNOT_OVERWRITE_MEDIA: 409,
  M_DUPLICATE_ANNOTATION: 400,
  M_INVALID_SIGNATURE: 401,
  M_INVITE_BLOCKED: 403,
  M_USER_LIMIT_EXCEEDED: 403,
  M_PROFILE_TOO_LARGE: 400,
  M_KEY_TOO_LARGE: 400,
  M_BAD_ALIAS: 400,
  M_UNKNOWN_DEVICE: 400,
  // Application-service pieces of the C-S API (login, ping)
  M_APPSERVICE_LOGIN_UNSUPPORTED: 400,
  M_URL_NOT_SET: 400,
  M_BAD_STATUS: 502,
  M_CONNECTION_FAILED: 502,
  M_CONNECTION_TIMEOUT: 504,
  // Identity Service API
  M_INVALID_EMAIL: 400,
  M_INVALID_ADDRESS: 400,
  M_EMAIL_SEND_ERROR: 500,
  M_SEND_ERROR: 500,
  M_TERMS_NOT_SIGNED: 403,
  M_INVALID_PEPPER: 400,
  M_SESSION_NOT_VALIDATED: 400,
  M_NO_VALID_SESSION: 400,
  M_SESSION_EXPIRED: 400,
  M_TOKEN_INCORRECT: 400,
  M_DESTINATION_REJECTED: 400,
  /** The IS spec spells this one in the plural. */
  M_MISSING_PARAMS: 400,
} as const satisfies Record<string, number>;

/** A spec-defined errcode. */
export type Errcode = keyof typeof ERRCODES;

/** True when `code` is one of the spec's errcodes. */
export function isSpecErrcode(code: string): code is Errcode {
  return Object.prototype.hasOwnProperty.call(ERRCODES, code);
}

/** The wire form of an error: `{errcode, error, ...extra}`. */
export interface MatrixErrorBody {
  errcode: string;
  error: string;
  [extra: string]: unknown;
}

/**
 * An outcome the spec names. Carries the errcode, a human message, the HTTP status
 * (defaulting to the errcode's usual one) and extra fields rendered beside them
 * (`retry_after_ms`, `mxid`, `lookup_pepper`, `algorithm`, `soft_logout`, …).
 */
export class MatrixError extends Error {
  override name = "MatrixError";
  readonly errcode: string;
  readonly status: number;
  readonly extra: Readonly<Record<string, unknown>>;

  constructor(errcode: Errcode | (string & {}), message: string, status?: number, extra: Record<string, unknown> = {}) {
    super(message);
    this.errcode = errcode;
    this.status = status ?? (isSpecErrcode(errcode) ? ERRCODES[errcode] : 400);
    this.extra = extra;
  }

  /** The JSON body to send. Extra fields never override `errcode` or `error`. */
  toJSON(): MatrixErrorBody {
    return { ...this.extra, errcode: this.errcode, error: this.message };
  }

  /** Builds an error from a response body, if it has the `{errcode, error}` shape. */
  static fromBody(status: number, body: unknown): MatrixError | undefined {
    if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
    const { errcode, error, ...extra } = body as Record<string, unknown>;
    if (typeof errcode !== "string") return undefined;
    return new MatrixError(errcode, typeof error === "string" ? error : "", status, extra);
  }
}

/** True for a {@link MatrixError} (also across package copies). */
export function isMatrixError(e: unknown): e is MatrixError {
  return e instanceof MatrixError || (e instanceof Error && e.name === "MatrixError" && typeof (e as MatrixError).errcode === "string");
}
