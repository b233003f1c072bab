/**
 * The outbox end to end: real SMTP (test-support's receiver on 127.0.0.1), real databases
 * (SQLite always, PostgreSQL when TEST_POSTGRES_URL is set), a FakeClock for back-off.
 */
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Kysely } from "kysely";
import { createMetrics, FakeClock, InProcessNotifier, openDatabase, runMigrations, type DatabaseHandle, type Engine } from "@beckon/server-kit";
import { createTempDatabase, freePort, postgresSkipReason, startSmtpReceiver, tempDir, waitFor, type SmtpReceiver } from "@beckon/test-support";
import { enqueueMail, MailOutbox, mailMigrations, type MailMetrics, type MailTables, type MailToSend } from "./outbox.js";
import { createMailTransport, MailSendError, type MailTransport, type OutgoingMail } from "./transport.js";

const quiet = process.env.MAIL_DEBUG ? { info: (o: object, m?: string) => console.error("INFO", m, o), warn: (o: object, m?: string) => console.error("WARN", m, o), error: (o: object, m?: string) => console.error("ERROR", m, o) } : { info() {}, warn() {}, error() {} };
const IS = "http://127.0.0.1:8090";

function invite(to: string, extra: Partial<MailToSend> = {}): MailToSend {
  return {
    to,
    kind: "invite",
    template: "invite",
    vars: {
      public_base_url: IS,
      room_id: "!room:example.org",
      sender: "@alice:example.org",
      sender_display_name: "Alice",
      room_name: "Team <chat>",
      token: `tok${to.split("@")[0] ?? ""}`,
      ephemeral_private_key: "SECRET_EPHEMERAL_KEY",
    },
    ...extra,
  };
}

interface Env {
  handle: DatabaseHandle<MailTables>;
  url: string;
  drop(): Promise<void>;
}

async function openEnv(engine: Engine): Promise<Env> {
  if (engine === "sqlite") {
    const dir = tempDir("beckon-mail-");
    const url = `sqlite:${dir.path}/is.sqlite`;
    const handle = await openDatabase<MailTables>({ url });
    return { handle, url, drop: async () => dir.cleanup() };
  }
  const tmp = await createTempDatabase("beckon_mail");
  const handle = await openDatabase<MailTables>({ url: tmp.url });
  return { handle, url: tmp.url, drop: () => tmp.drop() };
}

async function rows(db: Kysely<MailTables>) {
  return db.selectFrom("mail_outbox").selectAll().orderBy("created_ts").execute();
}

function suite(engine: Engine, skip: string | undefined) {
  describe(`mail outbox on ${engine}`, { skip }, () => {
    let env: Env;
    let receiver: SmtpReceiver;
    let transport: MailTransport;
    let db: Kysely<MailTables>;
    const started: MailOutbox[] = [];
    let n = 0;
    const addr = (what: string) => `${what}-${++n}@example.org`;

    function outbox(opts: { clock: FakeClock; notifier?: InProcessNotifier; transport?: MailTransport; db?: Kysely<MailTables>; maxAttempts?: number; metrics?: MailMetrics }) {
      const box = new MailOutbox({
        db: opts.db ?? db,
        engine,
        transport: opts.transport ?? transport,
        clock: opts.clock,
        logger: quiet,
        backoff: { baseMs: 1000, maxMs: 4000 },
        ...(opts.notifier ? { notifier: opts.notifier } : {}),
        ...(opts.maxAttempts !== undefined ? { maxAttempts: opts.maxAttempts } : {}),
        ...(opts.metrics ? { metrics: opts.metrics } : {}),
      });
      started.push(box);
      box.start();
      return box;
    }

    before(async () => {
      env = await openEnv(engine);
      db = env.handle.db;
      assert.deepEqual(await runMigrations(env.handle, mailMigrations, "mail_test_migrations"), ["0500_mail_outbox"]);
      receiver = await startSmtpReceiver();
      transport = createMailTransport({ smtpUrl: receiver.url, from: "Beckon <noreply@example.org>", logger: quiet });
    });

    // Any live worker may send any due row: each test starts from no workers.
    beforeEach(async () => {
      for (const b of started.splice(0)) await b.stop();
    });

    after(async () => {
      for (const b of started) await b.stop();
      transport.close?.();
      await receiver.close();
      await env.handle.close();
      await env.drop();
    });

    test("enqueue in a transaction, commit, notify: the mail arrives within a second; body blanked after", async () => {
      const clock = new FakeClock();
      const notifier = new InProcessNotifier();
      outbox({ clock, notifier });
      const to = addr("bob");
      await db.transaction().execute(async (trx) => {
        await enqueueMail(trx, invite(to), clock.now());
      });
      const t0 = Date.now();
      notifier.notify("mail");
      const [mail] = await receiver.waitForMails(1, { timeoutMs: 1000, match: (m) => m.to.includes(to) });
      assert.ok(Date.now() - t0 < 1000);
      assert.ok(mail);
      assert.deepEqual(mail.to, [to]);
      assert.equal(mail.from, "noreply@example.org");
      assert.equal(mail.subject, "Alice has invited you to chat");
      assert.ok(mail.text.includes(`${IS}/_matrix/identity/v2/sign-ed25519?token=tok`));
      assert.ok(mail.text.includes("Alice (@alice:example.org)"));
      assert.ok(mail.html.includes("Team &lt;chat&gt;"));
      assert.equal(mail.headers.get("auto-submitted"), "auto-generated");
      const row = await waitFor(async () => (await rows(db)).find((r) => r.recipient === to && r.status === "sent"), { timeoutMs: 2000 });
      assert.equal(row.body_text, "");
      assert.equal(row.body_html, null);
      assert.equal(row.headers, "{}");
      assert.equal(row.attempts, 1);
      assert.equal(row.sent_ts, clock.now());
      const all = JSON.stringify(await rows(db));
      assert.ok(!all.includes("SECRET_EPHEMERAL_KEY"), "the ephemeral private key is not kept");
    });

    test("a rolled-back transaction sends nothing", async () => {
      const clock = new FakeClock();
      const box = outbox({ clock });
      const to = addr("rollback");
      await assert.rejects(
        db.transaction().execute(async (trx) => {
          await enqueueMail(trx, invite(to), clock.now());
          throw new Error("request failed after queueing");
        }),
        /request failed/,
      );
      box.wake();
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await rows(db)).filter((r) => r.recipient === to).length, 0);
      assert.equal(receiver.mails.filter((m) => m.to.includes(to)).length, 0);
    });

    test("a dedupe key makes a repeated enqueue a no-op", async () => {
      const clock = new FakeClock();
      const box = outbox({ clock });
      const to = addr("dedupe");
      for (let i = 0; i < 3; i++) {
        await db.transaction().execute((trx) => enqueueMail(trx, invite(to, { dedupeKey: `k-${to}` }), clock.now()));
      }
      box.wake();
      await receiver.waitForMails(1, { timeoutMs: 2000, match: (m) => m.to.includes(to) });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await rows(db)).filter((r) => r.recipient === to).length, 1);
      assert.equal(receiver.mails.filter((m) => m.to.includes(to)).length, 1);
    });

    test("SMTP refusing (451): retried with back-off, delivered exactly once when it accepts", async () => {
      const clock = new FakeClock();
      const notifier = new InProcessNotifier();
      const metrics = new FakeMetrics();
      outbox({ clock, notifier, metrics });
      const to = addr("refused");
      receiver.setRefusing(true);
      try {
        await db.transaction().execute((trx) => enqueueMail(trx, invite(to), clock.now()));
        notifier.notify("mail");
        const failed = await waitFor(async () => (await rows(db)).find((r) => r.recipient === to && r.attempts >= 1 && r.last_error !== null), { timeoutMs: 3000 });
        assert.equal(failed.status, "pending");
        assert.match(failed.last_error ?? "", /451/);
        assert.ok(failed.next_attempt_ts > clock.now(), "next attempt is backed off");
        assert.ok(failed.body_text.includes("SECRET_EPHEMERAL_KEY"), "body kept until sent");
        // Still refusing: time passes, more attempts, nothing delivered.
        await waitFor(async () => {
          clock.advance(1000);
          return (await rows(db)).find((r) => r.recipient === to && r.attempts >= 3);
        });
      } finally {
        receiver.setRefusing(false);
      }
      await waitFor(() => {
        clock.advance(1000);
        return receiver.mails.some((m) => m.to.includes(to));
      }, { timeoutMs: 5000 });
      for (let i = 0; i < 5; i++) {
        clock.advance(5000);
        await new Promise((r) => setTimeout(r, 40));
      }
      assert.equal(receiver.mails.filter((m) => m.to.includes(to)).length, 1);
      const row = await waitFor(async () => (await rows(db)).find((r) => r.recipient === to && r.status === "sent"));
      assert.equal(row.body_text, "");
      assert.ok(metrics.count("mail_retrying_total") >= 2);
      assert.equal(metrics.count("mail_sent_total"), 1);
    });

    test("SMTP down (connection refused): queued, then delivered once the server is up", async () => {
      const port = await freePort();
      const down = createMailTransport({ smtpUrl: `smtp://127.0.0.1:${port}`, from: "noreply@example.org", logger: quiet, timeoutsMs: { connection: 2000 } });
      const clock = new FakeClock();
      const notifier = new InProcessNotifier();
      outbox({ clock, notifier, transport: down });
      const to = addr("down");
      await db.transaction().execute((trx) => enqueueMail(trx, invite(to), clock.now()));
      notifier.notify("mail");
      const failed = await waitFor(async () => (await rows(db)).find((r) => r.recipient === to && r.last_error !== null), { timeoutMs: 5000 });
      assert.match(failed.last_error ?? "", /ECONNECTION|ECONNREFUSED|ESOCKET/);
      const late = await startSmtpReceiver(port);
      try {
        await waitFor(() => {
          clock.advance(1000);
          return late.mails.length > 0;
        }, { timeoutMs: 5000 });
        for (let i = 0; i < 3; i++) {
          clock.advance(5000);
          await new Promise((r) => setTimeout(r, 40));
        }
        assert.equal(late.mails.length, 1);
        assert.deepEqual(late.mails[0]?.to, [to]);
      } finally {
        down.close?.();
        await late.close();
      }
    });

    test("two workers on one database never send a mail twice", async () => {
      const second = await openDatabase<MailTables>({ url: env.url });
      try {
        const clock = new FakeClock();
        const tos = Array.from({ length: 30 }, () => addr("pair"));
        await db.transaction().execute(async (trx) => {
          for (const to of tos) await enqueueMail(trx, invite(to), clock.now());
        });
        // Started after the commit: two better-sqlite3 connections in one process would otherwise
        // block each other's event loop in busy waits (separate processes do not have that problem).
        const a = outbox({ clock });
        const b = outbox({ clock, db: second.db });
        a.wake();
        b.wake();
        await receiver.waitForMails(tos.length, { timeoutMs: 5000, match: (m) => tos.some((t) => m.to.includes(t)) });
        await new Promise((r) => setTimeout(r, 200));
        for (const to of tos) assert.equal(receiver.mails.filter((m) => m.to.includes(to)).length, 1, to);
        // Every message gets a fresh random MIME boundary.
        const boundaries = receiver.mails.filter((m) => tos.some((t) => m.to.includes(t))).map((m) => /boundary="?([^";\r\n]+)/.exec(m.raw)?.[1]);
        assert.equal(new Set(boundaries).size, tos.length);
        assert.ok(boundaries.every((b) => b !== undefined && b.length >= 16));
        assert.equal((await rows(db)).filter((r) => tos.includes(r.recipient) && r.status === "sent").length, tos.length);
        await a.stop();
        await b.stop();
      } finally {
        await second.close();
      }
    });

    test("permanent rejections (5xx) are failed after maxAttempts, body blanked", async () => {
      const clock = new FakeClock();
      const metrics = new FakeMetrics();
      const sent: OutgoingMail[] = [];
      const rejecting: MailTransport = {
        async send(msg) {
          sent.push(msg);
          throw new MailSendError("550 mailbox unavailable", { permanent: true, responseCode: 550 });
        },
      };
      const box = outbox({ clock, transport: rejecting, maxAttempts: 3, metrics });
      const to = addr("rejected");
      await db.transaction().execute((trx) => enqueueMail(trx, invite(to), clock.now()));
      box.wake();
      const row = await waitFor(async () => {
        clock.advance(1000);
        return (await rows(db)).find((r) => r.recipient === to && r.status === "failed");
      }, { timeoutMs: 5000 });
      assert.equal(row.attempts, 3);
      assert.equal(sent.filter((m) => m.to === to).length, 3);
      assert.equal(row.body_text, "");
      assert.equal(row.body_html, null);
      assert.match(row.last_error ?? "", /550/);
      assert.equal(metrics.count("mail_failed_total"), 1);
      assert.equal(metrics.count("mail_retrying_total"), 2);
      await box.stop();
    });

    test("stop() ends the worker: nothing is sent after it", async () => {
      const clock = new FakeClock();
      const box = outbox({ clock });
      await box.stop();
      const to = addr("stopped");
      await db.transaction().execute((trx) => enqueueMail(trx, invite(to), clock.now()));
      box.wake();
      clock.advance(10_000);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(receiver.mails.filter((m) => m.to.includes(to)).length, 0);
      assert.equal((await box.counts()).pending >= 1, true);
      // Another worker picks it up.
      outbox({ clock }).wake();
      await receiver.waitForMails(1, { timeoutMs: 2000, match: (m) => m.to.includes(to) });
    });

    test("operator's Sydent-style templates through the outbox; kit metrics", async () => {
      const tpl = tempDir("beckon-mail-tpl-");
      try {
        mkdirSync(join(tpl.path, "acme"));
        writeFileSync(
          join(tpl.path, "acme", "invite_template.eml.j2"),
          [
            "From: {{ from|safe }}",
            "To: {{ to|safe }}",
            "Subject: ACME: {{ sender_display_name|safe }} {{ bracketed_verified_sender|safe }}invited you",
            "MIME-Version: 1.0",
            'Content-Type: multipart/alternative; boundary="{{ multipart_boundary|safe }}"',
            "",
            "--{{ multipart_boundary|safe }}",
            "Content-Type: text/plain; charset=UTF-8",
            "",
            "Join {{ room_name|safe }}: {{ web_client_location }}/#/room/{{ room_id|urlencode }}?signurl={{ sign_url|urlencode }}",
            "",
            "--{{ multipart_boundary|safe }}",
            "Content-Type: text/html; charset=UTF-8",
            "",
            "<p>Join {{ room_name }}</p>",
            "",
            "--{{ multipart_boundary|safe }}--",
            "",
          ].join("\n"),
        );
        const clock = new FakeClock();
        const metrics = createMetrics("test_is", { defaultMetrics: false });
        const box = outbox({ clock, metrics });
        const to = addr("acme");
        await db.transaction().execute((trx) => enqueueMail(trx, invite(to), clock.now(), { templateDir: tpl.path, brand: "acme", from: "noreply@example.org" }));
        box.wake();
        const [m] = await receiver.waitForMails(1, { timeoutMs: 2000, match: (x) => x.to.includes(to) });
        assert.ok(m);
        assert.equal(m.subject, "ACME: Alice (@alice:example.org) invited you");
        assert.ok(m.text.startsWith("Join Team <chat>: https://app.element.io/#/room/%21room%3Aexample.org?signurl=http%3A//127.0.0.1%3A8090/"), m.text);
        assert.ok(m.html.includes("<p>Join Team &lt;chat&gt;</p>"));
        await waitFor(async () => (await rows(db)).find((r) => r.recipient === to && r.status === "sent"), { timeoutMs: 2000 });
        const text = await metrics.registry.metrics();
        assert.match(text, /^test_is_mail_sent_total\{template="invite"\} 1$/m, text);
      } finally {
        tpl.cleanup();
      }
    });

    test("sent and failed rows are purged after the retention period", async () => {
      const clock = new FakeClock();
      const before = await rows(db);
      assert.ok(before.some((r) => r.status === "sent"));
      clock.advance(8 * 24 * 3600_000);
      const box = outbox({ clock });
      box.wake();
      await waitFor(async () => (await rows(db)).every((r) => r.status === "pending"));
      await box.stop();
    });
  });
}

class FakeMetrics {
  readonly counts = new Map<string, number>();
  counter(name: string) {
    return {
      inc: (_labels: Record<string, string>, value = 1) => {
        this.counts.set(name, (this.counts.get(name) ?? 0) + value);
      },
    };
  }
  count(name: string): number {
    return this.counts.get(name) ?? 0;
  }
}

suite("sqlite", undefined);
suite("postgres", postgresSkipReason());
