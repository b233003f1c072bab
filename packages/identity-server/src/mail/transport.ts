/**
 * SMTP out, on nodemailer, which carries the MIME text `mime.ts` builds. `smtp://host:port` may
 * be plaintext, but STARTTLS is used whenever the server offers it and the certificate is then
 * verified; `smtps://` is implicit TLS.
 * Certificates are verified by default (Sydent did not: CVE-2023-38686); `requireTls`
 * refuses to send without TLS. The test-only `insecureSkipTlsVerify` is loudly logged.
 */
import { connect as netConnect, isIP, type Socket } from "node:net";
import type { Transporter } from "nodemailer";
import type SMTPPool from "nodemailer/lib/smtp-pool/index.js";
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
  /** Name sent in EHLO (default: nodemailer's, the machine's host name). */
  heloName?: string;
  /** Parallel SMTP connections (default 5). */
  maxConnections?: number;
  /** Connection / greeting / socket timeouts in ms (default 10 s, 10 s, 30 s). */
  timeoutsMs?: { connection?: number; greeting?: number; socket?: number };
}

/** Header names a mail may not set itself: we (or nodemailer) own them. */
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
  const options: SMTPPool.Options = {
    pool: true,
    host,
    port,
    secure,
    // STARTTLS whenever offered (nodemailer's default); required when asked.
    ignoreTLS: false,
    requireTLS: opts.requireTls === true && !secure,
    tls: {
      rejectUnauthorized: !insecure,
      minVersion: "TLSv1.2",
      ...(isIP(host) === 0 ? { servername: host } : {}),
      ...(opts.tlsCa !== undefined ? { ca: opts.tlsCa } : {}),
    },
    maxConnections: opts.maxConnections ?? 5,
    maxMessages: 100,
    connectionTimeout: opts.timeoutsMs?.connection ?? 10_000,
    greetingTimeout: opts.timeoutsMs?.greeting ?? 10_000,
    socketTimeout: opts.timeoutsMs?.socket ?? 30_000,
    logger: false,
    ...(auth ? { auth } : {}),
    ...(opts.heloName !== undefined ? { name: opts.heloName } : {}),
    // Our own TCP connection with Nagle off: nodemailer writes a message in several small
    // chunks, and Nagle's algorithm against the receiver's delayed ACK stalled every mail by
    // ~40 ms (the outbox drained ~70 mails/s over 5 connections). TLS (implicit or STARTTLS)
    // is still negotiated by nodemailer over this socket, with the options above.
    getSocket: (_o: unknown, cb: (err: Error | null, socket?: { connection: Socket }) => void) => {
      const timeout = opts.timeoutsMs?.connection ?? 10_000;
      const socket = netConnect({ host, port, noDelay: true });
      let done = false;
      const finish = (err: Error | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) {
          socket.destroy();
          cb(Object.assign(err, { code: (err as { code?: unknown }).code ?? "ECONNECTION" }));
        } else {
          cb(null, { connection: socket });
        }
      };
      const timer = setTimeout(() => finish(Object.assign(new Error("Connection timeout"), { code: "ETIMEDOUT" })), timeout);
      socket.once("connect", () => finish(null));
      socket.once("error", finish);
    },
  };
  // nodemailer is loaded on the first mail, not at start (~6 MB of RSS for a server that never mails).
  let transporter: Promise<Transporter> | undefined;
  const getTransporter = (): Promise<Transporter> =>
    (transporter ??= import("nodemailer").then((m) => m.default.createTransport(options)));

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
        // nodemailer only carries the finished message (see mime.ts). The envelope is exactly
        // our one recipient, whatever the headers say.
        await (await getTransporter()).sendMail({ envelope: { from: from.address, to: [msg.to] }, raw, disableFileAccess: true, disableUrlAccess: true });
      } catch (e) {
        throw toMailSendError(e);
      }
    },
    async verify() {
      try {
        await (await getTransporter()).verify();
      } catch (e) {
        throw toMailSendError(e);
      }
    },
    close() {
      void transporter?.then((t) => t.close(), () => {});
    },
  };
}
