/**
 * A minimal SMTP receiver for benchmarks: ESMTP with PIPELINING, 8BITMIME and SMTPUTF8, no
 * TLS or AUTH, every mail kept as its envelope and raw text. It stands in for an operator's
 * mail relay, which would run on another machine: `smtp-server` (what {@link startSmtpReceiver}
 * runs, and what tests use) costs the benchmark's own process ~0.5 ms of CPU per mail on the
 * same two cores the servers being measured run on; this costs a fraction of that.
 */
import { createServer, type Socket } from "node:net";
import { listenReceiver, type ReceivedMail, type SmtpReceiver } from "./smtp.js";

/** `<addr>` of `MAIL FROM:<addr> …` / `RCPT TO:<addr> …` (empty for the null sender). */
function pathArg(line: string): string | undefined {
  const m = /^[A-Za-z]+ (?:FROM|TO):\s*<([^>]*)>/i.exec(line);
  return m ? m[1] : undefined;
}

export async function startSmtpSink(options: { port?: number } = {}): Promise<SmtpReceiver> {
  const mails: ReceivedMail[] = [];
  const waiters = new Set<() => void>();
  const sockets = new Set<Socket>();
  let refusing = false;

  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    // Bytes as latin1 characters: the message is decoded as UTF-8 only when complete.
    let buf = "";
    let inData = false;
    let from = "";
    let rcpt: string[] = [];
    socket.write("220 sink ESMTP\r\n");
    socket.on("data", (chunk: Buffer) => {
      buf += chunk.toString("latin1");
      let out = "";
      for (;;) {
        if (inData) {
          // The message ends at CRLF "." CRLF (or "." CRLF right at its start).
          const end = buf.startsWith(".\r\n") ? 0 : buf.indexOf("\r\n.\r\n");
          if (end < 0) break;
          const body = end === 0 ? "" : buf.slice(0, end + 2);
          buf = buf.slice(end === 0 ? 3 : end + 5);
          inData = false;
          const raw = Buffer.from(body.replace(/^\.\./gm, "."), "latin1").toString("utf8");
          mails.push({ from, to: rcpt, subject: "", text: "", html: "", headers: new Map(), raw, receivedAt: Date.now() });
          from = "";
          rcpt = [];
          for (const w of waiters) w();
          out += "250 OK queued\r\n";
          continue;
        }
        const eol = buf.indexOf("\r\n");
        if (eol < 0) break;
        const line = buf.slice(0, eol);
        buf = buf.slice(eol + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO") out += "250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 52428800\r\n";
        else if (verb === "HELO") out += "250 sink\r\n";
        else if (verb === "MAIL") {
          const p = pathArg(line);
          if (p === undefined) out += "501 Syntax: MAIL FROM:<address>\r\n";
          else {
            from = Buffer.from(p, "latin1").toString("utf8");
            rcpt = [];
            out += "250 OK\r\n";
          }
        } else if (verb === "RCPT") {
          const p = pathArg(line);
          if (p === undefined) out += "501 Syntax: RCPT TO:<address>\r\n";
          else if (refusing) out += "451 try again later\r\n";
          else {
            rcpt.push(Buffer.from(p, "latin1").toString("utf8"));
            out += "250 OK\r\n";
          }
        } else if (verb === "DATA") {
          if (rcpt.length === 0) out += "503 No valid recipients\r\n";
          else {
            inData = true;
            out += "354 End data with <CR><LF>.<CR><LF>\r\n";
          }
        } else if (verb === "RSET") {
          from = "";
          rcpt = [];
          out += "250 OK\r\n";
        } else if (verb === "NOOP") out += "250 OK\r\n";
        else if (verb === "QUIT") {
          socket.end(`${out}221 Bye\r\n`);
          return;
        } else out += "502 Command not implemented\r\n";
      }
      if (out !== "") socket.write(out);
    });
  });
  return listenReceiver(
    server,
    options.port,
    mails,
    waiters,
    (v) => (refusing = v),
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
}
