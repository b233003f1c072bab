import { SMTPServer } from "smtp-server";
import { simpleParser } from "mailparser";
import { freePort } from "./ports.js";

/** One mail as the receiver saw it. */
export interface ReceivedMail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  html: string;
  headers: Map<string, unknown>;
  raw: string;
  receivedAt: number;
}

export interface SmtpReceiver {
  host: string;
  port: number;
  /** `smtp://127.0.0.1:<port>` */
  url: string;
  mails: ReceivedMail[];
  /** Waits until at least `count` mails (optionally matching) have arrived. */
  waitForMails(count: number, opts?: { timeoutMs?: number; match?: (m: ReceivedMail) => boolean }): Promise<ReceivedMail[]>;
  /** While set, every RCPT is refused with a 4xx (SMTP "try again later"). */
  setRefusing(refusing: boolean): void;
  close(): Promise<void>;
}

export interface SmtpReceiverOptions {
  port?: number;
  /**
   * Parse every mail with mailparser as it arrives (default true). Benchmarks turn it off:
   * parsing costs the receiving process ~1 ms of CPU per mail. Unparsed mails have the
   * envelope and `raw` only; {@link parseReceivedMail} parses one later.
   */
  parse?: boolean;
}

/** `mail` with subject, text, html and headers filled in from its raw message. */
export async function parseReceivedMail(mail: ReceivedMail): Promise<ReceivedMail> {
  const parsed = await simpleParser(mail.raw);
  return {
    ...mail,
    subject: parsed.subject ?? "",
    text: parsed.text ?? "",
    html: typeof parsed.html === "string" ? parsed.html : "",
    headers: parsed.headers as Map<string, unknown>,
  };
}

/**
 * Listens on 127.0.0.1:`port` (a free port when undefined) and returns the receiver's API over
 * its shared state (both receivers, smtp-server's and the benchmarks' sink, use it).
 */
export async function listenReceiver(
  server: { listen(port: number, host: string, cb: () => void): unknown; once(event: "error", f: (e: Error) => void): unknown },
  port: number | undefined,
  mails: ReceivedMail[],
  waiters: Set<() => void>,
  setRefusing: (refusing: boolean) => void,
  close: () => Promise<void>,
): Promise<SmtpReceiver> {
  const p = port ?? (await freePort());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(p, "127.0.0.1", () => resolve());
  });
  return {
    host: "127.0.0.1",
    port: p,
    url: `smtp://127.0.0.1:${p}`,
    mails,
    setRefusing,
    waitForMails: (count, opts) => waitForMails(mails, waiters, count, opts),
    close,
  };
}

/** Waits until `mails` holds `count` matching mails; `waiters` are called on each new mail. */
export async function waitForMails(
  mails: readonly ReceivedMail[],
  waiters: Set<() => void>,
  count: number,
  opts: { timeoutMs?: number; match?: (m: ReceivedMail) => boolean } = {},
): Promise<ReceivedMail[]> {
  const { timeoutMs = 10_000, match = () => true } = opts;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = mails.filter(match);
    if (got.length >= count) return got;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`expected ${count} mail(s), got ${got.length}`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, Math.min(left, 200));
      function done() {
        clearTimeout(t);
        waiters.delete(done);
        resolve();
      }
      waiters.add(done);
    });
  }
}

/** A real SMTP server on 127.0.0.1 (no auth, no TLS) that keeps what it receives. */
export async function startSmtpReceiver(options: number | SmtpReceiverOptions = {}): Promise<SmtpReceiver> {
  const { port, parse = true } = typeof options === "number" ? { port: options } : options;
  const mails: ReceivedMail[] = [];
  const waiters = new Set<() => void>();
  let refusing = false;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS", "AUTH"],
    logger: false,
    onRcptTo(_addr, _session, cb) {
      if (refusing) {
        const err = Object.assign(new Error("try again later"), { responseCode: 451 });
        cb(err);
        return;
      }
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        const mail: ReceivedMail = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          subject: "",
          text: "",
          html: "",
          headers: new Map(),
          raw: Buffer.concat(chunks).toString("utf8"),
          receivedAt: Date.now(),
        };
        (parse ? parseReceivedMail(mail) : Promise.resolve(mail))
          .then((m) => {
            mails.push({ ...m, receivedAt: Date.now() });
            for (const w of waiters) w();
            cb();
          })
          .catch((e: unknown) => cb(e instanceof Error ? e : new Error(String(e))));
      });
    },
  });
  server.on("error", () => {});
  return listenReceiver(server, port, mails, waiters, (v) => (refusing = v), () => new Promise<void>((resolve) => server.close(() => resolve())));
}
