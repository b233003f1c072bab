/**
 * SMTP out: the MIME text `mime.ts` builds, carried by `smtp-client.ts`. `smtp://host:port` may
 * be plaintext, but STARTTLS is used whenever the server offers it and the certificate is then
 * verified; `smtps://` is implicit TLS.
 * Certificates are verified by default (Sydent did not: CVE-2023-38686); `requireTls`
 * refuses to send without TLS. The test-only `insecureSkipTlsVerify` is loudly logged.
 */
import { isIP } from "node:net";
import { hostname } from "node:os";
import { SmtpClient } from "./smtp-client.js";
import { buildMime } from "./mime.js";
import { headerSafe, isValidMailAddress, parseSenderAddress } from "./text.js";

/** What the mailer logs through (pino's Logger fits). */
export interface MailLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface OutgoingMail {
  /** Defaults to the transport's configured sender. */
  from?: string;
  to: string;
  subject: string;
  text: string;
  html?: string;
  headers?: Record<string, string>;
}

export interface MailTransport {
  send(msg: OutgoingMail): Promise<void>;
  /** Checks the connection (and TLS) to the SMTP server. */
  verify?(): Promise<void>;
  close?(): void;
}

/** A failed send: `permanent` when the server answered 5xx (retrying the same mail will not help). */
export class MailSendError extends Error {
  readonly permanent: boolean;
  readonly responseCode: number | undefined;
  readonly code: string | undefined;
  constructor(message: string, opts: { permanent: boolean; responseCode?: number; code?: string; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.name = "MailSendError";
    this.permanent = opts.permanent;
    this.responseCode = opts.responseCode;
    this.code = opts.code;
  }
}

/** Classifies any error from a transport: SMTP 5xx is permanent, everything else worth a retry. */
export function toMailSendError(e: unknown): MailSendError {
  if (e instanceof MailSendError) return e;
  const o = (typeof e === "object" && e !== null ? e : {}) as { responseCode?: unknown; code?: unknown; message?: unknown };
  const responseCode = typeof o.responseCode === "number" ? o.responseCode : undefined;
  const code = typeof o.code === "string" ? o.code : undefined;
  const message = typeof o.message === "string" ? o.message : String(e);
  return new MailSendError(message, {
    permanent: responseCode !== undefined && responseCode >= 500 && responseCode < 600,
    ...(responseCode !== undefined ? { responseCode } : {}),
    ...(code !== undefined ? { code } : {}),
    cause: e,
  });
}

export interface MailTransportOptions {
  /** `smtp://[user:pass@]host[:port]` (port 25) or `smtps://[user:pass@]host[:port]` (port 465). */
  smtpUrl: string;
  /** Refuse to send unless the connection is TLS (STARTTLS required on `smtp://`). */
  requireTls?: boolean;
  /** Sender, `addr` or `Name <addr>`. */
  from: string;
  logger: MailLogger;
  /** Extra trusted CA certificate(s) in PEM, for a private mail relay. Verification stays on. */
  tlsCa?: string | string[];
  /** TEST ONLY: accept any certificate. Logged as a warning at start. */
  insecureSkipTlsVerify?: boolean;
  /** Name sent in EHLO (default: the machine's host name). */
  heloName?: string;
  /** Parallel SMTP connections (default 5). */
  maxConnections?: number;
  /** Connection / greeting / socket timeouts in ms (default 10 s, 10 s, 30 s). */
  timeoutsMs?: { connection?: number; greeting?: number; socket?: number };
}

/** The EHLO name: this machine's host name when it is a plausible domain, else an address literal. */
function heloName(): string {
  const h = hostname();
  return /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(h) ? h : "[127.0.0.1]";
}

/** Header names a mail may not set itself: `mime.ts` writes them. */
const RESERVED_HEADER = /^(from|to|cc|bcc|sender|reply-to|subject|date|message-id|mime-version|content-.*|return-path|received)$/i;

export function createMailTransport(opts: MailTransportOptions): MailTransport {
  let url: URL;
  try {
    url = new URL(opts.smtpUrl);
  } catch {
    throw new Error("smtp_url is not a URL");
  }
  const secure = url.protocol === "smtps:";
  if (!secure && url.protocol !== "smtp:") throw new Error("smtp_url must start with smtp:// or smtps://");
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (host === "") throw new Error("smtp_url has no host");
  const port = url.port ? Number(url.port) : secure ? 465 : 25;
  const sender = parseSenderAddress(opts.from);
  if (!sender) throw new Error(`mail sender "${opts.from}" is not a valid address`);
  const insecure = opts.insecureSkipTlsVerify === true;
  if (insecure) {
    opts.logger.warn(
      { smtp: `${url.protocol}//${host}:${port}` },
      "INSECURE: SMTP TLS certificate verification is OFF (insecure_skip_tls_verify). Never use this outside tests.",
    );
  }
  const auth = url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined;
  if (auth && !secure && !opts.requireTls) {
    opts.logger.warn({ smtp: `smtp://${host}:${port}` }, "SMTP credentials may be sent without TLS if the server offers no STARTTLS; consider requireTls or smtps://");
  }
  const client = new SmtpClient({
    host,
    port,
    secure,
    requireTls: opts.requireTls === true && !secure,
    tls: {
      rejectUnauthorized: !insecure,
      minVersion: "TLSv1.2",
      ...(isIP(host) === 0 ? { servername: host } : {}),
      ...(opts.tlsCa !== undefined ? { ca: opts.tlsCa } : {}),
    },
    ...(auth ? { auth } : {}),
    name: opts.heloName ?? heloName(),
    maxConnections: opts.maxConnections ?? 5,
    maxMessages: 100,
    timeoutsMs: { connection: opts.timeoutsMs?.connection ?? 10_000, greeting: opts.timeoutsMs?.greeting ?? 10_000, socket: opts.timeoutsMs?.socket ?? 30_000 },
  });

  return {
    async send(msg) {
      if (!isValidMailAddress(msg.to)) throw new MailSendError("recipient is not a single plain address", { permanent: true });
      const from = msg.from !== undefined ? parseSenderAddress(msg.from) : sender;
      if (!from) throw new MailSendError("sender is not a valid address", { permanent: true });
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(msg.headers ?? {})) {
        if (/^[!-9;-~]+$/.test(name) && !RESERVED_HEADER.test(name)) headers[name] = headerSafe(value, 900);
      }
      let raw: string;
      try {
        raw = buildMime({ from, to: msg.to, subject: headerSafe(msg.subject), text: msg.text, ...(msg.html !== undefined ? { html: msg.html } : {}), headers });
      } catch (e) {
        throw new MailSendError(`the message cannot be encoded: ${e instanceof Error ? e.message : String(e)}`, { permanent: true, cause: e });
      }
      try {
        // The envelope is exactly our one recipient, whatever the headers say.
        await client.send(from.address, msg.to, raw);
      } catch (e) {
        throw toMailSendError(e);
      }
    },
    async verify() {
      try {
        await client.verify();
      } catch (e) {
        throw toMailSendError(e);
      }
    },
    close() {
      client.close();
    },
  };
}
