/**
 * The development mail catcher of `beckon up`: an SMTP server that accepts every mail,
 * prints one line per mail with its links, keeps the mails (also appended to a JSON-lines
 * file in the data dir, so a restart keeps them), and lists them on a small web page.
 */
import { createServer, type Server } from "node:http";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { SMTPServer } from "smtp-server";
import { simpleParser } from "mailparser";

export interface CaughtMail {
  id: number;
  from: string;
  to: string[];
  subject: string;
  date: string;
  text: string;
  html: string;
  links: string[];
}

export interface MailCatcherOptions {
  smtpPort: number;
  webPort: number;
  host?: string;
  /** JSON-lines file to persist mails in (optional). */
  storeFile?: string;
  /** Where the one-line summaries go (default console.log). */
  print?: (line: string) => void;
}

export interface MailCatcher {
  smtpPort: number;
  webPort: number;
  mails: CaughtMail[];
  close(): Promise<void>;
}

const LINK = /https?:\/\/[^\s<>"'()]+/g;

/** The links in a text, in order, without duplicates or trailing punctuation. */
export function extractLinks(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(LINK)) {
    const link = m[0].replace(/[.,;:!?]+$/, "");
    if (!out.includes(link)) out.push(link);
  }
  return out;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** Escapes text and turns its links into anchors. */
function linkify(text: string): string {
  let out = "";
  let last = 0;
  for (const m of text.matchAll(LINK)) {
    const link = m[0].replace(/[.,;:!?]+$/, "");
    const at = m.index ?? 0;
    out += escapeHtml(text.slice(last, at));
    out += `<a href="${escapeHtml(link)}">${escapeHtml(link)}</a>`;
    last = at + link.length;
  }
  return out + escapeHtml(text.slice(last));
}

export function renderMailPage(mails: readonly CaughtMail[]): string {
  const items = [...mails]
    .reverse()
    .map(
      (m) => `<article class="mail" id="mail-${m.id}">
  <h2>${escapeHtml(m.subject || "(no subject)")}</h2>
  <p class="meta">To <b>${escapeHtml(m.to.join(", "))}</b> · from ${escapeHtml(m.from)} · <time>${escapeHtml(m.date)}</time></p>
  <pre class="text">${linkify(m.text)}</pre>
  ${m.html ? `<details><summary>HTML version</summary><iframe sandbox="allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation" srcdoc="${escapeHtml(m.html)}"></iframe></details>` : ""}
</article>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Beckon mail catcher</title>
<meta http-equiv="refresh" content="10">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.4rem}.mail{border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1rem 0}
.mail h2{font-size:1.1rem;margin:0 0 .3rem}.meta{color:#555;margin:0 0 .6rem}
pre.text{white-space:pre-wrap;word-break:break-word;background:#fafafa;padding:.8rem;border-radius:6px}
iframe{width:100%;height:28rem;border:1px solid #ccc;border-radius:6px}a{color:#0b5cad}
</style></head><body>
<h1>Beckon mail catcher</h1>
<p>${mails.length} mail(s). Every mail sent to the SMTP catcher shows up here; the page refreshes every 10 s.</p>
${items || "<p><i>No mail yet.</i></p>"}
</body></html>`;
}

export async function startMailCatcher(opts: MailCatcherOptions): Promise<MailCatcher> {
  const host = opts.host ?? "127.0.0.1";
  const print = opts.print ?? ((line: string) => console.log(line));
  const mails: CaughtMail[] = [];
  if (opts.storeFile && existsSync(opts.storeFile)) {
    for (const line of readFileSync(opts.storeFile, "utf8").split("\n")) {
      if (!line.trim()) continue;
      try {
        mails.push(JSON.parse(line) as CaughtMail);
      } catch {
        /* a torn last line after a crash: skip it */
      }
    }
  }
  let nextId = mails.reduce((n, m) => Math.max(n, m.id), 0) + 1;

  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS", "AUTH"],
    logger: false,
    size: 10 * 1024 * 1024,
    onData(stream, session, cb) {
      simpleParser(stream)
        .then((parsed) => {
          const text = parsed.text ?? "";
          const html = typeof parsed.html === "string" ? parsed.html : "";
          const mail: CaughtMail = {
            id: nextId++,
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
            to: session.envelope.rcptTo.map((r) => r.address),
            subject: parsed.subject ?? "",
            date: new Date().toISOString(),
            text,
            html,
            links: extractLinks(text || html),
          };
          mails.push(mail);
          if (opts.storeFile) appendFileSync(opts.storeFile, JSON.stringify(mail) + "\n");
          const links = mail.links.length ? ` links: ${mail.links.join(" ")}` : "";
          print(`[mail] to ${mail.to.join(", ")}: "${mail.subject.replace(/[\r\n]+/g, " ")}"${links}`);
          cb();
        })
        .catch((e: unknown) => cb(e instanceof Error ? e : new Error(String(e))));
    },
  });
  await new Promise<void>((resolve, reject) => {
    smtp.once("error", reject);
    smtp.listen(opts.smtpPort, host, () => resolve());
  });
  smtp.on("error", (e: Error) => print(`[mail] SMTP error: ${e.message}`));

  const web: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/api/mails") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ mails }));
      return;
    }
    if (path === "/" || path === "/index.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(renderMailPage(mails));
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found");
  });
  await new Promise<void>((resolve, reject) => {
    web.once("error", reject);
    web.listen(opts.webPort, host, () => resolve());
  });
  const smtpAddr = smtp.server.address();
  const webAddr = web.address();
  return {
    smtpPort: typeof smtpAddr === "object" && smtpAddr ? smtpAddr.port : opts.smtpPort,
    webPort: typeof webAddr === "object" && webAddr ? webAddr.port : opts.webPort,
    mails,
    close: async () => {
      await new Promise<void>((r) => smtp.close(() => r()));
      await new Promise<void>((r) => {
        web.closeAllConnections();
        web.close(() => r());
      });
    },
  };
}
