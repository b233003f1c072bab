/**
 * A small SMTP client (RFC 5321) for the outbox: a pool of connections, each doing EHLO,
 * STARTTLS whenever offered (RFC 3207; certificates verified), AUTH PLAIN or LOGIN when
 * credentials are given, then many mails. With PIPELINING (RFC 2920) a mail is two writes and
 * two waits — `MAIL`/`RCPT`/`DATA` together, then the message — where the nodemailer connection
 * used before took five of each plus its own MIME pass: ~15 % of the identity server's CPU per
 * store-invite under load.
 *
 * Any error closes the connection it happened on; the next mail opens a fresh one.
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";

export interface SmtpClientOptions {
  host: string;
  port: number;
  /** Implicit TLS (`smtps://`). */
  secure: boolean;
  /** Refuse to send unless the connection is TLS (STARTTLS required when not `secure`). */
  requireTls: boolean;
  /** For implicit TLS and STARTTLS (`rejectUnauthorized`, `ca`, `minVersion`, `servername`). */
  tls: ConnectionOptions;
  auth?: { user: string; pass: string };
  /** Name sent in EHLO. */
  name: string;
  maxConnections: number;
  /** Mails per connection before it is closed and replaced. */
  maxMessages: number;
  timeoutsMs: { connection: number; greeting: number; socket: number };
  /** An unused connection is closed after this long (default 10 s). */
  idleMs?: number;
}

/** An SMTP failure: `responseCode` when the server answered, `code` for the kind (nodemailer's names). */
export class SmtpError extends Error {
  readonly code: string;
  readonly responseCode: number | undefined;
  constructor(message: string, code: string, responseCode?: number, cause?: unknown) {
    super(message, cause !== undefined ? { cause } : undefined);
    this.name = "SmtpError";
    this.code = code;
    this.responseCode = responseCode;
  }
}

interface Reply {
  code: number;
  text: string;
}

/** One SMTP connection: writes, and replies read in order. */
class Connection {
  socket: Socket | TLSSocket;
  secure: boolean;
  readonly ext = new Set<string>();
  authMechanisms: string[] = [];
  sent = 0;
  #buf = "";
  #lines: string[] = [];
  readonly #ready: Reply[] = [];
  readonly #waiting: { resolve(r: Reply): void; reject(e: Error): void }[] = [];
  #failed: Error | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  readonly #socketTimeoutMs: number;
  onGone: (() => void) | undefined;
  /** The socket events this connection listens to, for attaching and (before STARTTLS) detaching. */
  readonly #listeners: [string, (arg: unknown) => void][] = [
    ["data", (chunk) => this.#data(chunk as Buffer)],
    ["end", () => this.fail(new SmtpError("The SMTP server closed the connection", "ECONNECTION"))],
    ["close", () => this.fail(new SmtpError("The SMTP server closed the connection", "ECONNECTION"))],
    ["error", (e) => this.fail(new SmtpError((e as Error).message, (e as { code?: string }).code === "ETIMEDOUT" ? "ETIMEDOUT" : "ECONNECTION", undefined, e))],
    ["timeout", () => this.fail(new SmtpError("SMTP server did not answer in time", "ETIMEDOUT"))],
  ];

  constructor(socket: Socket | TLSSocket, secure: boolean, socketTimeoutMs: number) {
    this.socket = socket;
    this.secure = secure;
    this.#socketTimeoutMs = socketTimeoutMs;
    this.#attach();
  }

  #attach(): void {
    for (const [event, f] of this.#listeners) this.socket.on(event, f);
  }

  #detach(): void {
    for (const [event, f] of this.#listeners) this.socket.off(event, f);
  }

  #data(chunk: Buffer): void {
    this.#buf += chunk.toString("latin1");
    for (let eol = this.#buf.indexOf("\n"); eol >= 0; eol = this.#buf.indexOf("\n")) {
      const line = this.#buf.slice(0, eol).replace(/\r$/, "");
      this.#buf = this.#buf.slice(eol + 1);
      this.#lines.push(line);
      // "250-…" continues a reply, "250 …" (or a bare "250") ends it.
      if (line.length >= 3 && line[3] !== "-") {
        const code = Number(line.slice(0, 3));
        const text = this.#lines.map((l) => l.slice(4)).join("\n");
        this.#lines = [];
        if (!Number.isInteger(code) || code < 200 || code > 599) {
          this.fail(new SmtpError(`Malformed SMTP reply: ${line.slice(0, 100)}`, "EPROTOCOL"));
          return;
        }
        const w = this.#waiting.shift();
        if (w) w.resolve({ code, text });
        else this.#ready.push({ code, text });
      }
    }
    if (this.#buf.length > 64 * 1024) this.fail(new SmtpError("SMTP reply line too long", "EPROTOCOL"));
    if (this.#waiting.length === 0) this.socket.setTimeout(0);
  }

  /** The next reply. */
  read(): Promise<Reply> {
    const r = this.#ready.shift();
    if (r) return Promise.resolve(r);
    if (this.#failed) return Promise.reject(this.#failed);
    this.socket.setTimeout(this.#socketTimeoutMs);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  write(text: string): void {
    if (this.#failed) throw this.#failed;
    this.socket.write(Buffer.from(text, "utf8"));
  }

  async command(line: string): Promise<Reply> {
    this.write(`${line}\r\n`);
    return this.read();
  }

  get alive(): boolean {
    return this.#failed === undefined;
  }

  fail(e: Error): void {
    if (this.#failed) return;
    this.#failed = e;
    this.idle(false, 0);
    for (const w of this.#waiting.splice(0)) w.reject(e);
    this.socket.destroy();
    this.onGone?.();
  }

  /** Closes the connection politely (QUIT), without waiting for the answer. */
  quit(): void {
    if (this.#failed) return;
    try {
      this.write("QUIT\r\n");
    } catch {
      /* closing anyway */
    }
    this.socket.end();
    this.fail(new SmtpError("Connection closed", "ECONNECTION"));
  }

  /** While idle in the pool: closed after `ms` unless taken again. */
  idle(on: boolean, ms: number): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (on) {
      this.#idleTimer = setTimeout(() => this.quit(), ms);
      this.#idleTimer.unref();
    }
  }

  /** Replaces the plain socket with TLS over it (STARTTLS). */
  async upgrade(tlsOptions: ConnectionOptions, host: string): Promise<void> {
    this.#detach();
    const plain = this.socket;
    const secured = tlsConnect({ ...tlsOptions, socket: plain, host });
    await new Promise<void>((resolve, reject) => {
      secured.once("secureConnect", () => resolve());
      secured.once("error", reject);
    }).catch((e: unknown) => {
      secured.destroy();
      plain.destroy();
      const err = new SmtpError(`TLS negotiation failed: ${e instanceof Error ? e.message : String(e)}`, "ETLS", undefined, e);
      this.#failed = err;
      throw err;
    });
    this.socket = secured;
    this.secure = true;
    this.#attach();
  }
}

function replyError(what: string, r: Reply, code: string): SmtpError {
  return new SmtpError(`${what}: ${r.code} ${r.text.replace(/\s+/g, " ").slice(0, 300)}`, code, r.code);
}

function dotStuff(raw: string): string {
  const body = raw.endsWith("\r\n") ? raw : `${raw}\r\n`;
  return body.replace(/^\./gm, "..");
}

export class SmtpClient {
  readonly #o: SmtpClientOptions;
  readonly #idle: Connection[] = [];
  readonly #queue: (() => void)[] = [];
  #open = 0;
  #closed = false;

  constructor(opts: SmtpClientOptions) {
    this.#o = opts;
  }

  /** Sends one message (CRLF lines, not dot-stuffed) from `from` to `to`. */
  async send(from: string, to: string, raw: string): Promise<void> {
    const conn = await this.#acquire();
    let ok = false;
    try {
      await this.#transaction(conn, from, to, raw);
      ok = true;
    } finally {
      this.#release(conn, ok);
    }
  }

  /** Opens a connection (greeting, EHLO, TLS, AUTH) and closes it again. */
  async verify(): Promise<void> {
    const conn = await this.#connect();
    conn.quit();
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#idle.splice(0)) c.quit();
    for (const w of this.#queue.splice(0)) w();
  }

  async #acquire(): Promise<Connection> {
    for (;;) {
      if (this.#closed) throw new SmtpError("The mail transport is closed", "ECONNECTION");
      const idle = this.#idle.pop();
      if (idle) {
        if (!idle.alive) continue;
        idle.idle(false, 0);
        return idle;
      }
      if (this.#open < this.#o.maxConnections) {
        this.#open++;
        try {
          const conn = await this.#connect();
          // From here on, a dead connection is one fewer open (and leaves the idle list).
          conn.onGone = () => {
            const i = this.#idle.indexOf(conn);
            if (i >= 0) this.#idle.splice(i, 1);
            this.#open--;
            this.#queue.shift()?.();
          };
          return conn;
        } catch (e) {
          this.#open--;
          this.#queue.shift()?.();
          throw e;
        }
      }
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    }
  }

  #release(conn: Connection, ok: boolean): void {
    conn.sent++;
    if (ok && conn.alive && !this.#closed && conn.sent < this.#o.maxMessages) {
      this.#idle.push(conn);
      conn.idle(true, this.#o.idleMs ?? 10_000);
      this.#queue.shift()?.();
    } else if (conn.alive) {
      // Errors leave the session in an unknown state: start over on a fresh connection. The
      // closed connection's `onGone` frees its slot and wakes a waiter.
      if (ok) conn.quit();
      else conn.fail(new SmtpError("Connection dropped after an error", "ECONNECTION"));
    }
  }

  async #connect(): Promise<Connection> {
    const o = this.#o;
    const socket = await new Promise<Socket | TLSSocket>((resolve, reject) => {
      const s = o.secure ? tlsConnect({ ...o.tls, host: o.host, port: o.port }) : netConnect({ host: o.host, port: o.port, noDelay: true });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new SmtpError("Connection timeout", "ETIMEDOUT"));
      }, o.timeoutsMs.connection);
      s.once(o.secure ? "secureConnect" : "connect", () => {
        clearTimeout(timer);
        s.off("error", onError);
        resolve(s);
      });
      const onError = (e: Error) => {
        clearTimeout(timer);
        s.destroy();
        reject(new SmtpError(o.secure ? `TLS connection failed: ${e.message}` : e.message, o.secure ? "ETLS" : "ECONNECTION", undefined, e));
      };
      s.once("error", onError);
    });
    socket.setNoDelay(true);
    const conn = new Connection(socket, o.secure, o.timeoutsMs.socket);
    try {
      const greeting = await Promise.race([
        conn.read(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new SmtpError("Greeting never received", "ETIMEDOUT")), o.timeoutsMs.greeting).unref()),
      ]);
      if (greeting.code !== 220) throw replyError("SMTP greeting", greeting, "EPROTOCOL");
      await this.#ehlo(conn);
      if (!conn.secure && conn.ext.has("STARTTLS")) {
        const r = await conn.command("STARTTLS");
        if (r.code !== 220) throw replyError("STARTTLS", r, "ETLS");
        await conn.upgrade(o.tls, o.host);
        await this.#ehlo(conn);
      }
      if (o.requireTls && !conn.secure) throw new SmtpError("TLS is required, but the SMTP server does not offer STARTTLS", "ETLS");
      if (o.auth) await this.#auth(conn, o.auth);
    } catch (e) {
      conn.fail(e instanceof Error ? e : new Error(String(e)));
      throw e;
    }
    return conn;
  }

  async #ehlo(conn: Connection): Promise<void> {
    let r = await conn.command(`EHLO ${this.#o.name}`);
    conn.ext.clear();
    conn.authMechanisms = [];
    if (r.code !== 250) {
      r = await conn.command(`HELO ${this.#o.name}`);
      if (r.code !== 250) throw replyError("HELO", r, "EPROTOCOL");
      return;
    }
    for (const line of r.text.split("\n").slice(1)) {
      const [kw = "", ...rest] = line.trim().toUpperCase().split(/\s+/);
      conn.ext.add(kw);
      if (kw === "AUTH") conn.authMechanisms = rest;
    }
  }

  async #auth(conn: Connection, auth: { user: string; pass: string }): Promise<void> {
    const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
    if (conn.authMechanisms.includes("PLAIN")) {
      const r = await conn.command(`AUTH PLAIN ${b64(`\u0000${auth.user}\u0000${auth.pass}`)}`);
      if (r.code !== 235) throw replyError("AUTH PLAIN", r, "EAUTH");
      return;
    }
    if (conn.authMechanisms.includes("LOGIN")) {
      let r = await conn.command("AUTH LOGIN");
      if (r.code !== 334) throw replyError("AUTH LOGIN", r, "EAUTH");
      r = await conn.command(b64(auth.user));
      if (r.code !== 334) throw replyError("AUTH LOGIN", r, "EAUTH");
      r = await conn.command(b64(auth.pass));
      if (r.code !== 235) throw replyError("AUTH LOGIN", r, "EAUTH");
      return;
    }
    throw new SmtpError("The SMTP server offers neither AUTH PLAIN nor AUTH LOGIN", "EAUTH");
  }

  async #transaction(conn: Connection, from: string, to: string, raw: string): Promise<void> {
    const params =
      (conn.ext.has("SMTPUTF8") && /[^\x00-\x7f]/.test(from + to) ? " SMTPUTF8" : "") + (conn.ext.has("8BITMIME") && /[^\x00-\x7f]/.test(raw) ? " BODY=8BITMIME" : "");
    const commands = [`MAIL FROM:<${from}>${params}`, `RCPT TO:<${to}>`, "DATA"];
    let replies: Reply[];
    if (conn.ext.has("PIPELINING")) {
      conn.write(`${commands.join("\r\n")}\r\n`);
      replies = [await conn.read(), await conn.read(), await conn.read()];
    } else {
      replies = [];
      for (const c of commands) {
        const r = await conn.command(c);
        replies.push(r);
        if (r.code >= 400) break;
      }
    }
    const [mail, rcpt, data] = replies;
    if (!mail || mail.code !== 250) throw replyError("MAIL FROM", mail ?? { code: 0, text: "" }, "EENVELOPE");
    if (!rcpt || (rcpt.code !== 250 && rcpt.code !== 251)) throw replyError("RCPT TO", rcpt ?? { code: 0, text: "" }, "EENVELOPE");
    if (!data || data.code !== 354) throw replyError("DATA", data ?? { code: 0, text: "" }, "EMESSAGE");
    conn.write(`${dotStuff(raw)}.\r\n`);
    const done = await conn.read();
    if (done.code !== 250) throw replyError("Message", done, "EMESSAGE");
  }
}
