/**
 * The SMTP client against smtp-server (a real, independent SMTP server) on 127.0.0.1: AUTH
 * PLAIN and LOGIN, servers with and without PIPELINING, the connection limit, refusals
 * (5xx permanent, 4xx not), a server that drops connections, and one that never answers.
 * TLS (implicit and STARTTLS, certificate checks) is covered in transport.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { SMTPServer, type SMTPServerOptions } from "smtp-server";
import { freePort } from "@beckon/test-support";
import { createMailTransport, MailSendError, type MailLogger, type MailTransport } from "./transport.js";

const quiet: MailLogger = { info() {}, warn() {}, error() {} };

interface Server {
  url: string;
  port: number;
  mails: { raw: string; from: string; to: string[]; user: string | undefined }[];
  maxConcurrent: number;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

async function startServer(extra: Partial<SMTPServerOptions> = {}): Promise<Server> {
  const mails: Server["mails"] = [];
  const sockets = new Set<Socket>();
  let open = 0;
  const self: Server = { url: "", port: 0, mails, maxConcurrent: 0, sockets, close: async () => {} };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onConnect(session, cb) {
      open++;
      self.maxConcurrent = Math.max(self.maxConcurrent, open);
      cb();
    },
    onClose() {
      open--;
    },
    onRcptTo(addr, _session, cb) {
      if (addr.address.startsWith("reject5")) cb(Object.assign(new Error("no such user"), { responseCode: 550 }));
      else if (addr.address.startsWith("reject4")) cb(Object.assign(new Error("try later"), { responseCode: 451 }));
      else cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        mails.push({
          raw: Buffer.concat(chunks).toString("utf8"),
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          user: session.user as string | undefined,
        });
        cb();
      });
    },
    ...extra,
  });
  server.on("error", () => {});
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", () => resolve()));
  // smtp-server keeps its sockets private: track them through the listening server.
  (server as unknown as { server: { on(ev: "connection", f: (s: Socket) => void): void } }).server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  self.url = `smtp://127.0.0.1:${port}`;
  self.port = port;
  self.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return self;
}

const msg = (to: string, i = 0) => ({ to, subject: `Mail ${i}`, text: `.dot first\nbody ${i}\n` });

/** Runs `fn` with a server and a transport to it, closing both afterwards. */
async function withServer(maxConnections: number, extra: Partial<SMTPServerOptions>, fn: (server: Server, tr: MailTransport) => Promise<void>): Promise<void> {
  const server = await startServer(extra);
  const tr = createMailTransport({ smtpUrl: server.url, from: "noreply@example.org", logger: quiet, maxConnections });
  try {
    await fn(server, tr);
  } finally {
    tr.close?.();
    await server.close();
  }
}

/** A plain TCP server that writes `greeting` (if any) and then never answers. */
async function startMuteServer(greeting?: string): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    if (greeting !== undefined) s.write(greeting);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", () => resolve()));
  return {
    url: `smtp://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

for (const method of ["PLAIN", "LOGIN"] as const) {
  test(`AUTH ${method}: right credentials send, wrong ones fail permanently`, async () => {
    const server = await startServer({
      authMethods: [method],
      allowInsecureAuth: true,
      authOptional: false,
      onAuth(auth, _session, cb) {
        if (auth.username === "relay user" && auth.password === "s3cret:pass") cb(null, { user: auth.username });
        else cb(Object.assign(new Error("bad credentials"), { responseCode: 535 }));
      },
    });
    const good = createMailTransport({ smtpUrl: `smtp://relay%20user:s3cret%3Apass@127.0.0.1:${server.port}`, from: "noreply@example.org", logger: quiet });
    const bad = createMailTransport({ smtpUrl: `smtp://relay%20user:wrong@127.0.0.1:${server.port}`, from: "noreply@example.org", logger: quiet });
    try {
      await good.send(msg("bob@example.org"));
      assert.equal(server.mails.length, 1);
      assert.equal(server.mails[0]?.user, "relay user");
      await assert.rejects(bad.send(msg("bob@example.org")), (e) => e instanceof MailSendError && e.permanent && e.responseCode === 535);
      assert.equal(server.mails.length, 1);
    } finally {
      good.close?.();
      bad.close?.();
      await server.close();
    }
  });
}

for (const pipelining of [true, false]) {
  test(`${pipelining ? "with" : "without"} PIPELINING: 60 mails over at most 3 connections, each intact (dot-stuffing undone)`, async () => {
    await withServer(3, pipelining ? {} : { hidePIPELINING: true }, async (server, tr) => {
      await Promise.all(Array.from({ length: 60 }, (_, i) => tr.send(msg(`user${i}@example.org`, i))));
      assert.equal(server.mails.length, 60);
      assert.ok(server.maxConcurrent <= 3, `at most 3 connections (saw ${server.maxConcurrent})`);
      for (let i = 0; i < 60; i++) {
        const m = server.mails.find((x) => x.to[0] === `user${i}@example.org`);
        assert.ok(m, `mail ${i}`);
        assert.equal(m.from, "noreply@example.org");
        assert.match(m.raw, new RegExp(`\\r\\n\\r\\n\\.dot first\\r\\nbody ${i}\\r\\n$`));
      }
    });
  });
}

test("a refused recipient fails alone (5xx permanent, 4xx not); the next mail goes through", async () => {
  await withServer(1, {}, async (server, tr) => {
    await assert.rejects(tr.send(msg("reject5@example.org")), (e) => e instanceof MailSendError && e.permanent && e.responseCode === 550);
    await assert.rejects(tr.send(msg("reject4@example.org")), (e) => e instanceof MailSendError && !e.permanent && e.responseCode === 451);
    await tr.send(msg("ok@example.org"));
    assert.deepEqual(
      server.mails.map((m) => m.to),
      [["ok@example.org"]],
    );
  });
});

test("a connection the server drops while idle is replaced", async () => {
  await withServer(1, {}, async (server, tr) => {
    await tr.send(msg("a@example.org"));
    assert.equal(server.sockets.size, 1, "the idle connection is open");
    for (const s of server.sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 50));
    await tr.send(msg("b@example.org"));
    assert.equal(server.mails.length, 2);
  });
});

test("a server that greets and then never answers times out (not permanent), and so does one that never greets", async () => {
  const mute = await startMuteServer("220 mute ESMTP\r\n");
  const silent = await startMuteServer();
  const timeoutsMs = { connection: 1000, greeting: 300, socket: 300 };
  const a = createMailTransport({ smtpUrl: mute.url, from: "noreply@example.org", logger: quiet, timeoutsMs });
  const b = createMailTransport({ smtpUrl: silent.url, from: "noreply@example.org", logger: quiet, timeoutsMs });
  try {
    const started = Date.now();
    await assert.rejects(a.send(msg("x@example.org")), (e) => e instanceof MailSendError && !e.permanent && e.code === "ETIMEDOUT");
    await assert.rejects(b.send(msg("x@example.org")), (e) => e instanceof MailSendError && !e.permanent && e.code === "ETIMEDOUT");
    assert.ok(Date.now() - started < 3000, "both gave up within their timeouts");
  } finally {
    a.close?.();
    b.close?.();
    await mute.close();
    await silent.close();
  }
});
