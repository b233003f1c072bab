import { test } from "node:test";
import assert from "node:assert/strict";
import { createTransport } from "nodemailer";
import { tempDir } from "@beckon/test-support";
import { extractLinks, startMailCatcher } from "./mail-catcher.js";

test("extractLinks keeps order, drops duplicates and trailing punctuation", () => {
  assert.deepEqual(extractLinks("see http://a.example/x?y=1. and https://b.example/, http://a.example/x?y=1"), [
    "http://a.example/x?y=1",
    "https://b.example/",
  ]);
});

test("mail catcher receives over SMTP, prints one line, lists on its page, and persists", async () => {
  const dir = tempDir();
  const lines: string[] = [];
  const catcher = await startMailCatcher({ smtpPort: 0, webPort: 0, storeFile: `${dir.path}/mail.jsonl`, print: (l) => lines.push(l) });
  try {
    const transport = createTransport({ host: "127.0.0.1", port: catcher.smtpPort, secure: false, ignoreTLS: true });
    await transport.sendMail({
      from: "is@localhost",
      to: "carol@example.org",
      subject: "Alice invited you to <Room>",
      text: "Join: http://127.0.0.1:8090/_matrix/identity/v2/sign-ed25519?token=abc&private_key=def\nthanks",
      html: "<p>Join <a href='http://x/'>here</a></p>",
    });
    assert.equal(catcher.mails.length, 1);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /carol@example.org/);
    assert.match(lines[0]!, /sign-ed25519\?token=abc&private_key=def/);
    const page = await (await fetch(`http://127.0.0.1:${catcher.webPort}/`)).text();
    assert.match(page, /Alice invited you to &lt;Room&gt;/);
    assert.match(page, /<a href="http:\/\/127.0.0.1:8090\/_matrix\/identity\/v2\/sign-ed25519\?token=abc&amp;private_key=def">/);
    const api = (await (await fetch(`http://127.0.0.1:${catcher.webPort}/api/mails`)).json()) as { mails: unknown[] };
    assert.equal(api.mails.length, 1);
  } finally {
    await catcher.close();
  }
  const again = await startMailCatcher({ smtpPort: 0, webPort: 0, storeFile: `${dir.path}/mail.jsonl`, print: () => {} });
  try {
    assert.equal(again.mails.length, 1, "mails survive a restart");
  } finally {
    await again.close();
    dir.cleanup();
  }
});
