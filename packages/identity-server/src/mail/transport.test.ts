/**
 * The SMTP transport against real SMTP servers on 127.0.0.1: TLS verified by default
 * (implicit TLS and STARTTLS), a private CA can be trusted, the insecure switch is loud,
 * requireTls refuses plaintext, and nothing in a message can add recipients or headers.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SMTPServer } from "smtp-server";
import { freePort, parseReceivedMail, startSmtpReceiver, startSmtpSink, tempDir } from "@beckon/test-support";
import { createMailTransport, MailSendError, type MailLogger } from "./transport.js";

const quiet: MailLogger = { info() {}, warn() {}, error() {} };

interface Pki {
  ca: string;
  key: string;
  cert: string;
}

let pki: Pki | undefined;
let skipTls: string | undefined;
const dir = tempDir("beckon-mail-tls-");

function openssl(args: string[]): void {
  const r = spawnSync("openssl", args, { cwd: dir.path, encoding: "utf8" });
  if (r.error || r.status !== 0) throw new Error(`openssl ${args[0] ?? ""} failed: ${r.error?.message ?? r.stderr}`);
}

before(() => {
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Beckon test CA",
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
    openssl(["req", ...ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1"]);
    writeFileSync(join(dir.path, "ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n");
    openssl(["x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf"]);
    const read = (f: string) => readFileSync(join(dir.path, f), "utf8");
    pki = { ca: read("ca.pem"), key: read("srv.key"), cert: read("srv.pem") };
  } catch (e) {
    skipTls = `cannot make test certificates: ${e instanceof Error ? e.message : String(e)}`;
  }
});

after(() => dir.cleanup());

interface TlsServer {
  url: string;
  received: { raw: string; secure: boolean; rcpt: string[] }[];
  close(): Promise<void>;
}

async function startTlsServer(mode: "smtps" | "starttls", p: Pki): Promise<TlsServer> {
  const received: TlsServer["received"] = [];
  const server = new SMTPServer({
    secure: mode === "smtps",
    key: p.key,
    cert: p.cert,
    authOptional: true,
    disabledCommands: ["AUTH"],
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        received.push({ raw: Buffer.concat(chunks).toString("utf8"), secure: session.secure, rcpt: session.envelope.rcptTo.map((r) => r.address) });
        cb();
      });
    },
  });
  server.on("error", () => {});
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", () => resolve()));
  return {
    url: `${mode === "smtps" ? "smtps" : "smtp"}://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const msg = { to: "bob@example.org", subject: "Hello", text: "hi\n" };

for (const mode of ["smtps", "starttls"] as const) {
  test(`${mode}: certificate verified by default, a private CA can be trusted, insecure switch is logged`, async (t) => {
    if (skipTls || !pki) return t.skip(skipTls);
    const server = await startTlsServer(mode, pki);
    const transports: { close?(): void }[] = [];
    try {
      const strict = createMailTransport({ smtpUrl: server.url, from: "noreply@example.org", logger: quiet });
      transports.push(strict);
      await assert.rejects(strict.send(msg), (e) => e instanceof MailSendError && !e.permanent && /certificate/i.test(e.message));
      assert.equal(server.received.length, 0);

      const trusted = createMailTransport({ smtpUrl: server.url, from: "noreply@example.org", logger: quiet, tlsCa: pki.ca });
      transports.push(trusted);
      await trusted.send(msg);
      assert.equal(server.received.length, 1);
      assert.equal(server.received[0]?.secure, true, "sent over TLS");

      const warnings: string[] = [];
      const insecure = createMailTransport({
        smtpUrl: server.url,
        from: "noreply@example.org",
        insecureSkipTlsVerify: true,
        logger: { ...quiet, warn: (_o, m) => void warnings.push(m ?? "") },
      });
      transports.push(insecure);
      assert.ok(warnings.some((w) => /INSECURE/.test(w)), "loudly logged");
      await insecure.send(msg);
      assert.equal(server.received.length, 2);
    } finally {
      for (const tr of transports) tr.close?.();
      await server.close();
    }
  });
}

test("requireTls refuses a server without STARTTLS; plaintext is allowed otherwise", async () => {
  const receiver = await startSmtpReceiver();
  const strict = createMailTransport({ smtpUrl: receiver.url, from: "noreply@example.org", logger: quiet, requireTls: true });
  const plain = createMailTransport({ smtpUrl: receiver.url, from: "noreply@example.org", logger: quiet });
  try {
    await assert.rejects(strict.send(msg), (e) => e instanceof MailSendError);
    assert.equal(receiver.mails.length, 0);
    await plain.send(msg);
    assert.equal(receiver.mails.length, 1);
  } finally {
    strict.close?.();
    plain.close?.();
    await receiver.close();
  }
});

test("nothing in a message adds recipients or headers", async () => {
  const receiver = await startSmtpReceiver();
  const tr = createMailTransport({ smtpUrl: receiver.url, from: "Beckon <noreply@example.org>", logger: quiet });
  try {
    await tr.send({
      to: "bob@example.org",
      subject: "Hi\r\nBcc: eve@example.org\r\nX-Injected: 1",
      text: "body\n",
      headers: { Bcc: "eve@example.org", "X-Ok": "fine\r\nX-Evil: 1", "Bad Name:": "x", Subject: "other" },
    });
    await assert.rejects(tr.send({ ...msg, to: "bob@example.org, eve@example.org" }), (e) => e instanceof MailSendError && e.permanent);
    await assert.rejects(tr.send({ ...msg, to: "bob@example.org\r\nRCPT TO:<eve@example.org>" }), (e) => e instanceof MailSendError && e.permanent);
    const [m] = await receiver.waitForMails(1, { timeoutMs: 2000 });
    assert.ok(m);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(receiver.mails.length, 1);
    assert.deepEqual(m.to, ["bob@example.org"]);
    assert.equal(m.subject, "Hi Bcc: eve@example.org X-Injected: 1");
    const headerBlock = m.raw.split(/\r\n\r\n/)[0] ?? "";
    assert.ok(!/^bcc:/im.test(headerBlock));
    assert.ok(!/^x-injected:/im.test(headerBlock));
    assert.ok(!/^x-evil:/im.test(headerBlock));
    assert.match(headerBlock, /^X-Ok: fine X-Evil: 1$/im);
    assert.match(headerBlock, /^From: Beckon <noreply@example.org>$/im);
  } finally {
    tr.close?.();
    await receiver.close();
  }
});

test("the benchmarks' SMTP sink gets what smtp-server gets: envelope, raw text (dot-stuffing undone, UTF-8), refusals", async () => {
  const receiver = await startSmtpReceiver({ parse: false });
  const sink = await startSmtpSink();
  const mail = { to: "zoë@example.org", subject: "Grüße", text: ".leading dot\n..two dots\nGrüße\n", html: "<p>.x</p>" };
  const via = (url: string) => createMailTransport({ smtpUrl: url, from: "Beckon <noreply@example.org>", logger: quiet, maxConnections: 2 });
  const a = via(receiver.url);
  const b = via(sink.url);
  try {
    await Promise.all([a.send(mail), b.send(mail), b.send({ ...mail, to: "bob@example.org" })]);
    const [fromServer] = await receiver.waitForMails(1);
    const got = await sink.waitForMails(2);
    const mine = got.find((m) => m.to[0] === "zoë@example.org");
    assert.ok(fromServer && mine);
    assert.deepEqual([mine.from, mine.to], [fromServer.from, fromServer.to]);
    // Same message apart from the Date, Message-ID and boundary each send makes.
    const stable = (raw: string) => raw.replace(/^(Date|Message-ID): .*$/gm, "").replace(/=_beckon_[0-9a-f]+/g, "B");
    assert.equal(stable(mine.raw), stable(fromServer.raw));
    assert.equal((await parseReceivedMail(mine)).text, mail.text);
    sink.setRefusing(true);
    await assert.rejects(b.send(mail), (e) => e instanceof MailSendError && !e.permanent);
  } finally {
    a.close?.();
    b.close?.();
    await receiver.close();
    await sink.close();
  }
});

test("bad configuration is refused at creation", () => {
  assert.throws(() => createMailTransport({ smtpUrl: "http://x", from: "a@example.org", logger: quiet }), /smtp/);
  assert.throws(() => createMailTransport({ smtpUrl: "not a url", from: "a@example.org", logger: quiet }), /URL/);
  assert.throws(() => createMailTransport({ smtpUrl: "smtp://127.0.0.1:25", from: "a@example.org\r\nBcc: x@example.org", logger: quiet }), /sender/);
});
