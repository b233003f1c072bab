/**
 * Secrets never appear in anything the SDK prints: error messages, URLs in errors and events.
 * Query parameters that carry secrets are replaced, and every secret the SDK holds (access
 * tokens, identity-server tokens) is registered with a {@link Redactor} that masks it anywhere.
 *
 * @example
 * redactUrl("https://hs/_matrix/client/v3/sync?access_token=abc&since=s1")
 * // "https://hs/_matrix/client/v3/sync?access_token=<redacted>&since=s1"
 */

/** Query parameters whose values are secrets. */
export const SECRET_QUERY_PARAMS: readonly string[] = ["access_token", "private_key", "client_secret", "password", "id_access_token", "token"];

export const REDACTED = "<redacted>";

/** Replaces the values of secret query parameters in a URL (or any text containing URLs). */
export function redactUrl(url: string): string {
  return url.replace(/([?&;](?:access_token|private_key|client_secret|password|id_access_token|token)=)[^&#\s"']*/gi, `$1${REDACTED}`);
}

/** Masks registered secrets and secret query values in text. */
export class Redactor {
  readonly #secrets = new Set<string>();

  /** Registers a secret (ignored when shorter than 4 characters: too likely to match innocently). */
  add(secret: string | undefined): void {
    if (secret && secret.length >= 4) this.#secrets.add(secret);
  }

  redact(text: string): string {
    let out = redactUrl(text);
    for (const s of this.#secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
    // Authorization header values, should one ever be echoed back in a body.
    return out.replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/g, `$1${REDACTED}`);
  }
}
