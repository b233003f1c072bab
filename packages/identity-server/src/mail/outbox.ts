/**
 * The durable mail outbox (issue 3, DECISIONS "Mail", protocol-notes §9 items 2–3).
 *
 * A request renders its mail and inserts it in the same transaction as the state it belongs
 * to (`enqueueMail`), so the answer is only sent once both are committed, and a rolled-back
 * request leaves no mail behind. A worker (`MailOutbox`), woken through the notifier right
 * after the commit, claims due rows (a lease; `FOR UPDATE SKIP LOCKED` on PostgreSQL, SQLite
 * has a single writer), hands them to SMTP, and marks them sent — blanking the stored body,
 * because an invite mail carries the invite's ephemeral private key, which must not persist
 * (DECISIONS "Signing and keys"). SMTP down or answering 4xx: retried with capped, jittered
 * exponential back-off. SMTP answering 5xx: failed after `maxAttempts`.
 *
 * Delivery is at least once: a process that dies between SMTP's "250 OK" and marking the row
 * sent resends after the lease expires. Nothing else sends a mail twice.
 */
import { randomUUID } from "node:crypto";
import { sql, type Kysely } from "kysely";
import { batched, runSql, type Clock, type Engine, type Migration, type Notifier } from "@beckon/server-kit";
import { MailTemplateError, type MailTemplateName } from "./context.js";
import { renderMail, type RenderMailOptions } from "./render.js";
import { isValidMailAddress } from "./text.js";
import { toMailSendError, type MailLogger, type MailTransport } from "./transport.js";

export type MailKind = "validation" | "invite";
export type MailStatus = "pending" | "sent" | "failed";

export interface MailOutboxTable {
  id: string;
  /** Unique when set: a second enqueue with the same key is a no-op. */
  dedupe_key: string | null;
  kind: string;
  template: string;
  recipient: string;
  subject: string;
  /** JSON object of extra headers; `{}` once sent. */
  headers: string;
  /** Blanked ("") once sent or failed. */
  body_text: string;
  body_html: string | null;
  status: string;
  attempts: number;
  next_attempt_ts: number;
  /** Lease of the worker that claimed the row; another worker may take it after this time. */
  claimed_until_ts: number | null;
  claim_token: string | null;
  created_ts: number;
  sent_ts: number | null;
  last_error: string | null;
}

/** The outbox's tables, to merge into a server's Kysely database type if it wants typed access. */
export interface MailTables {
  mail_outbox: MailOutboxTable;
}

/** Same SQL on both engines (BIGINT milliseconds, TEXT ids and JSON). */
export const mailMigrations: Migration[] = [
  {
    id: "0500_mail_outbox",
    async up(db) {
      await sql`CREATE TABLE mail_outbox (
        id TEXT PRIMARY KEY,
        dedupe_key TEXT,
        kind TEXT NOT NULL,
        template TEXT NOT NULL,
        recipient TEXT NOT NULL,
        subject TEXT NOT NULL,
        headers TEXT NOT NULL,
        body_text TEXT NOT NULL,
        body_html TEXT,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ts BIGINT NOT NULL,
        claimed_until_ts BIGINT,
        claim_token TEXT,
        created_ts BIGINT NOT NULL,
        sent_ts BIGINT,
        last_error TEXT
      )`.execute(db);
      await sql`CREATE UNIQUE INDEX mail_outbox_dedupe ON mail_outbox (dedupe_key)`.execute(db);
      await sql`CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_ts)`.execute(db);
    },
  },
];

/**
 * Any Kysely instance or transaction, whatever its database type (`Kysely<X>` is not assignable to
 * `Kysely<unknown>`); the outbox only touches its own table.
 */
export type AnyKysely = Pick<Kysely<MailTables>, "isTransaction">;

export interface MailToSend {
  to: string;
  kind: MailKind;
  template: MailTemplateName;
  vars: Record<string, unknown>;
  dedupeKey?: string;
}

/**
 * A unique row id that sorts by creation time: new rows go to the end of the primary-key index
 * (a random UUID alone put each one on a random index page, one more page in every commit).
 */
function outboxId(now: number): string {
  return `${Math.max(0, Math.floor(now)).toString(36).padStart(9, "0")}-${randomUUID()}`;
}

/**
 * Renders `mail` now and inserts it into the outbox inside the caller's transaction (or
 * database). Notify the outbox (`notifier.notify("mail")` or `outbox.wake()`) after the
 * commit. Throws {@link MailTemplateError} for a bad recipient or missing variables.
 *
 * @example
 * await inTransaction(db, async (trx) => {
 *   await invites.insert(trx, invite);
 *   await enqueueMail(trx, { to, kind: "invite", template: "invite", vars, dedupeKey: `invite:${token}` }, clock.now(), renderOptions);
 * });
 * notifier.notify("mail");
 */
export async function enqueueMail(trx: AnyKysely, mail: MailToSend, now: number, options: RenderMailOptions = {}): Promise<void> {
  if (!isValidMailAddress(mail.to)) throw new MailTemplateError("mail recipient is not a single plain address");
  if (mail.kind !== "validation" && mail.kind !== "invite") throw new MailTemplateError(`unknown mail kind "${String(mail.kind)}"`);
  const rendered = renderMail(mail.template, { ...mail.vars, to: mail.to }, { now, ...options });
  // Fixed SQL (runSql): the query builder cost more than SQLite on store-invite's path.
  await runSql(
    trx as unknown as Kysely<MailTables>,
    "INSERT INTO mail_outbox (id, dedupe_key, kind, template, recipient, subject, headers, body_text, body_html, status, attempts, next_attempt_ts, claimed_until_ts, claim_token, created_ts, sent_ts, last_error) " +
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, NULL, NULL, ?, NULL, NULL) ON CONFLICT (dedupe_key) DO NOTHING",
    [outboxId(now), mail.dedupeKey ?? null, mail.kind, mail.template, mail.to, rendered.subject, JSON.stringify(rendered.headers), rendered.text, rendered.html ?? null, now, now],
  );
}

/** What the outbox needs from the metrics registry (the kit's `createMetrics()` fits). */
export interface MailMetrics {
  counter(name: string, help: string, labels?: readonly string[]): { inc(labels: Record<string, string>, value?: number): void };
}

export interface MailOutboxOptions<DB = unknown> {
  db: Kysely<DB> | AnyKysely;
  engine: Engine;
  transport: MailTransport;
  clock: Clock;
  logger: MailLogger;
  /** Wakes the worker on channel "mail". */
  notifier?: Notifier;
  metrics?: MailMetrics | undefined;
  /** Attempts before a mail the SMTP server rejects permanently (5xx) is marked failed. Default 5. */
  maxAttempts?: number;
  /** Back-off between attempts: `min(maxMs, baseMs·2^(n-1))`, jittered to 50–100 %. Default 1 s … 10 min. */
  backoff?: { baseMs: number; maxMs: number };
  /** A mail still undelivered after this long is marked failed. Default 3 days. */
  maxAgeMs?: number;
  /** Rows claimed per round (default 50) and sent in parallel (default 5). */
  batchSize?: number;
  concurrency?: number;
  /** How long a claim lasts before another worker may retry the row (default 5 min). */
  leaseMs?: number;
  /** Fallback polling when nothing wakes the worker (default 2 s). */
  pollIntervalMs?: number;
  /** Sent and failed rows are deleted after this long (default 7 days). */
  retentionMs?: number;
  /** Sender override (default: the transport's). */
  from?: string;
  random?: () => number;
}

export const MAIL_CHANNEL = "mail";

/** How long a sent mail waits for others to be marked sent in the same statement. */
const SENT_BATCH_MS = 5;

type Row = MailOutboxTable;

/** The worker that sends what {@link enqueueMail} stored. */
export class MailOutbox<DB = unknown> {
  readonly #db: Kysely<MailTables>;
  // Nothing below depends on DB, so a MailOutbox<X> is also a MailOutbox<unknown>.
  readonly #o: MailOutboxOptions;
  readonly #maxAttempts: number;
  readonly #backoff: { baseMs: number; maxMs: number };
  readonly #batchSize: number;
  readonly #concurrency: number;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  readonly #maxAgeMs: number;
  readonly #retentionMs: number;
  readonly #random: () => number;
  readonly #counters: {
    sent: { inc(labels: Record<string, string>, value?: number): void };
    failed: { inc(labels: Record<string, string>, value?: number): void };
    retrying: { inc(labels: Record<string, string>, value?: number): void };
  };
  #stopped = true;
  #again = false;
  #running: Promise<void> | undefined;
  #cancelTimer: (() => void) | undefined;
  #unsubscribe: (() => void) | undefined;
  #lastPurge = -Infinity;

  constructor(opts: MailOutboxOptions<DB>) {
    this.#o = opts as MailOutboxOptions;
    this.#db = opts.db as unknown as Kysely<MailTables>;
    this.#maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
    this.#backoff = opts.backoff ?? { baseMs: 1000, maxMs: 10 * 60_000 };
    this.#batchSize = Math.max(1, opts.batchSize ?? 50);
    this.#concurrency = Math.max(1, opts.concurrency ?? 5);
    this.#leaseMs = opts.leaseMs ?? 5 * 60_000;
    this.#pollMs = opts.pollIntervalMs ?? 2000;
    this.#maxAgeMs = opts.maxAgeMs ?? 3 * 24 * 3600_000;
    this.#retentionMs = opts.retentionMs ?? 7 * 24 * 3600_000;
    this.#random = opts.random ?? Math.random;
    const noop = { inc() {} };
    const m = opts.metrics;
    this.#counters = {
      sent: m ? m.counter("mail_sent_total", "Mails accepted by the SMTP server", ["template"]) : noop,
      failed: m ? m.counter("mail_failed_total", "Mails given up on (rejected permanently or too old)", ["template"]) : noop,
      retrying: m ? m.counter("mail_retrying_total", "Mail attempts that failed and will be retried", ["template"]) : noop,
    };
  }

  /** Starts the worker: it sends what is due now and whenever woken. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#unsubscribe = this.#o.notifier?.subscribe(MAIL_CHANNEL, () => this.wake());
    this.wake();
  }

  /** Finishes the round in progress (mails being handed to SMTP are completed) and stops. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    await this.#running;
  }

  /** Looks for due mail now (call after committing an enqueue when there is no notifier). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
      // Woken between the loop's last check and here: go again rather than lose it.
      if (this.#again && !this.#stopped) {
        this.#again = false;
        this.wake();
      }
    });
  }

  /** Row counts by status (for admin tools and tests). */
  async counts(): Promise<Record<MailStatus, number>> {
    const rows = await this.#db
      .selectFrom("mail_outbox")
      .select(["status", (eb) => eb.fn.countAll<number | string>().as("n")])
      .groupBy("status")
      .execute();
    const out: Record<MailStatus, number> = { pending: 0, sent: 0, failed: 0 };
    for (const r of rows) if (r.status === "pending" || r.status === "sent" || r.status === "failed") out[r.status] = Number(r.n);
    return out;
  }

  async #loop(): Promise<void> {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    let delay = this.#pollMs;
    try {
      for (;;) {
        this.#again = false;
        const claimed = await this.#round();
        if (this.#stopped) return;
        if (claimed >= this.#batchSize) continue;
        await this.#maybePurge();
        delay = await this.#nextDelay();
        // A wake-up that arrived during this round may concern a row committed after its claim.
        if (!this.#again) break;
      }
    } catch (e) {
      this.#o.logger.error({ err: e instanceof Error ? e.message : String(e) }, "mail outbox round failed; will retry");
      delay = this.#pollMs;
    }
    if (this.#stopped) return;
    this.#cancelTimer = this.#o.clock.setTimeout(() => {
      this.#cancelTimer = undefined;
      this.wake();
    }, delay);
  }

  /** Claims due rows and sends them; returns how many were claimed. */
  async #round(): Promise<number> {
    const now = this.#o.clock.now();
    const token = randomUUID();
    let due = this.#db
      .selectFrom("mail_outbox")
      .select("id")
      .where("status", "=", "pending")
      .where("next_attempt_ts", "<=", now)
      .where((eb) => eb.or([eb("claimed_until_ts", "is", null), eb("claimed_until_ts", "<=", now)]))
      .orderBy("next_attempt_ts")
      .orderBy("created_ts")
      .limit(this.#batchSize);
    if (this.#o.engine === "postgres") due = due.forUpdate().skipLocked();
    const rows = await this.#db
      .updateTable("mail_outbox")
      .set((eb) => ({ claim_token: token, claimed_until_ts: now + this.#leaseMs, attempts: eb("attempts", "+", 1) }))
      .where("id", "in", due)
      .returningAll()
      .execute();
    let next = 0;
    const worker = async () => {
      while (next < rows.length) {
        const row = rows[next++];
        if (row) await this.#deliver(row, token);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, rows.length) }, worker));
    return rows.length;
  }

  async #deliver(row: Row, token: string): Promise<void> {
    const labels = { template: row.template };
    let headers: Record<string, string> = {};
    try {
      const parsed: unknown = JSON.parse(row.headers);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
        for (const [k, v] of Object.entries(parsed)) if (typeof v === "string") headers[k] = v;
      }
    } catch {
      headers = {};
    }
    try {
      await this.#o.transport.send({
        ...(this.#o.from !== undefined ? { from: this.#o.from } : {}),
        to: row.recipient,
        subject: row.subject,
        text: row.body_text,
        ...(row.body_html !== null ? { html: row.body_html } : {}),
        headers,
      });
    } catch (e) {
      await this.#failed(row, token, e);
      return;
    }
    await this.#markSent({ id: row.id, token });
    this.#counters.sent.inc(labels);
  }

  /**
   * Marks a sent row. Rows that finish within a few milliseconds of each other are marked
   * together (one statement and one commit for several mails instead of one each); the
   * caller's promise settles when its row is marked.
   */
  readonly #markSent = batched(
    async (sent: { id: string; token: string }[]) => {
      const byToken = new Map<string, string[]>();
      for (const s of sent) byToken.set(s.token, [...(byToken.get(s.token) ?? []), s.id]);
      for (const [token, ids] of byToken) {
        await this.#db
          .updateTable("mail_outbox")
          .set({
            status: "sent",
            sent_ts: this.#o.clock.now(),
            // The invite's ephemeral private key lives only in the mail: forget it now.
            body_text: "",
            body_html: null,
            headers: "{}",
            claim_token: null,
            claimed_until_ts: null,
            last_error: null,
          })
          .where("id", "in", ids)
          .where("claim_token", "=", token)
          .execute();
      }
      return sent.map(() => undefined);
    },
    { delayMs: SENT_BATCH_MS },
  );

  async #failed(row: Row, token: string, e: unknown): Promise<void> {
    const err = toMailSendError(e);
    const now = this.#o.clock.now();
    const labels = { template: row.template };
    const lastError = `${err.responseCode ?? err.code ?? "error"}: ${err.message}`.slice(0, 500);
    const giveUp = (err.permanent && row.attempts >= this.#maxAttempts) || now - row.created_ts >= this.#maxAgeMs;
    if (giveUp) {
      await this.#db
        .updateTable("mail_outbox")
        .set({ status: "failed", body_text: "", body_html: null, headers: "{}", claim_token: null, claimed_until_ts: null, last_error: lastError })
        .where("id", "=", row.id)
        .where("claim_token", "=", token)
        .execute();
      this.#counters.failed.inc(labels);
      this.#o.logger.error(
        { mail: row.id, template: row.template, attempts: row.attempts, responseCode: err.responseCode, code: err.code },
        "mail given up",
      );
      return;
    }
    const base = Math.min(this.#backoff.maxMs, this.#backoff.baseMs * 2 ** Math.min(30, Math.max(0, row.attempts - 1)));
    const delay = Math.round(base / 2 + (this.#random() * base) / 2);
    await this.#db
      .updateTable("mail_outbox")
      .set({ next_attempt_ts: now + delay, claim_token: null, claimed_until_ts: null, last_error: lastError })
      .where("id", "=", row.id)
      .where("claim_token", "=", token)
      .execute();
    this.#counters.retrying.inc(labels);
    this.#o.logger.warn(
      { mail: row.id, template: row.template, attempts: row.attempts, retryInMs: delay, responseCode: err.responseCode, code: err.code },
      "mail not sent; will retry",
    );
  }

  /** Milliseconds until the earliest pending row is due (or its lease ends), within [25 ms, poll interval]. */
  async #nextDelay(): Promise<number> {
    const r = await this.#db
      .selectFrom("mail_outbox")
      .select(
        sql<number | string | null>`MIN(CASE WHEN claimed_until_ts IS NOT NULL AND claimed_until_ts > next_attempt_ts THEN claimed_until_ts ELSE next_attempt_ts END)`.as(
          "due",
        ),
      )
      .where("status", "=", "pending")
      .executeTakeFirst();
    if (!r || r.due === null) return this.#pollMs;
    const wait = Number(r.due) - this.#o.clock.now();
    return Math.min(this.#pollMs, Math.max(25, wait));
  }

  async #maybePurge(): Promise<void> {
    const now = this.#o.clock.now();
    if (now - this.#lastPurge < 3600_000) return;
    this.#lastPurge = now;
    const cutoff = now - this.#retentionMs;
    await this.#db
      .deleteFrom("mail_outbox")
      .where("status", "in", ["sent", "failed"])
      .where("created_ts", "<", cutoff)
      .execute();
  }
}
