/**
 * The MIME builder, checked by parsing its output with mailparser (an independent MIME parser):
 * what goes in comes out, and the text obeys the line rules of RFC 5322/2045/2047.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseReceivedMail } from "@beckon/test-support";
import { buildMime, headerLine, type MimeMessage } from "./mime.js";

async function roundTrip(msg: MimeMessage) {
  const raw = buildMime(msg);
  const parsed = await parseReceivedMail({ from: "", to: [], subject: "", text: "", html: "", headers: new Map(), raw, receivedAt: 0 });
  const from = (parsed.headers.get("from") as { value: { name: string; address: string }[] }).value[0];
  const to = (parsed.headers.get("to") as { value: { address: string }[] }).value[0];
  return { raw, parsed, from, to };
}

function headerBlock(raw: string): string {
  return raw.slice(0, raw.indexOf("\r\n\r\n"));
}

function assertWellFormed(raw: string): void {
  assert.ok(!/[^\r]\n|\r[^\n]/.test(raw), "only CRLF line endings");
  for (const line of raw.split("\r\n")) assert.ok(line.length <= 998, `line of ${line.length} characters`);
  for (const word of raw.match(/=\?[^?]*\?[BQ]\?[^?]*\?=/g) ?? []) assert.ok(word.length <= 75, `encoded word of ${word.length}`);
}

test("ASCII mail: headers, both bodies and the envelope address survive a parse", async () => {
  const msg: MimeMessage = {
    from: { name: "Beckon Identity", address: "noreply@id.example" },
    to: "bob@example.org",
    subject: "You have been invited to Bench",
    text: "Hello Bob,\n\nJoin: https://id.example/join?x=1\n",
    html: "<p>Hello <b>Bob</b></p>\n<p><a href=\"https://id.example/join?x=1\">Join</a></p>",
    headers: { "Auto-Submitted": "auto-generated" },
    date: new Date(Date.UTC(2026, 10, 24, 1, 2, 3)),
  };
  const { raw, parsed, from, to } = await roundTrip(msg);
  assertWellFormed(raw);
  assert.equal(parsed.subject, msg.subject);
  assert.deepEqual(from, { name: "Beckon Identity", address: "noreply@id.example" });
  assert.equal(to?.address, "bob@example.org");
  assert.equal(parsed.text, msg.text);
  assert.equal(parsed.html, msg.html);
  assert.equal(parsed.headers.get("auto-submitted"), "auto-generated");
  assert.match(headerBlock(raw), /^Date: Tue, 24 Nov 2026 01:02:03 \+0000$/m);
  assert.match(headerBlock(raw), /^Message-ID: <[0-9a-f-]{36}@id\.example>$/m);
  assert.match(headerBlock(raw), /^MIME-Version: 1\.0$/m);
});

test("non-ASCII subject, sender name and bodies are encoded and decode to the same text", async () => {
  const msg: MimeMessage = {
    from: { name: "Jürgen's \"Räume\" 🏠", address: "noreply@id.example" },
    to: "zoë@example.org",
    subject: "Ein Raum für dich: «Bücherwürmer» — 招待状 🎉 ".repeat(4).trim(),
    text: "Grüße,\r\nJürgen\n🎉\r",
    html: "<p>Grüße — <b>Jürgen</b></p>",
  };
  const { raw, parsed, from, to } = await roundTrip(msg);
  assertWellFormed(raw);
  assert.ok(/^[\x00-\x7f]*$/.test(headerBlock(raw).replace("zoë", "")), "headers are ASCII apart from the SMTPUTF8 recipient");
  assert.equal(parsed.subject, msg.subject);
  assert.equal(from?.name, msg.from.name);
  assert.equal(to?.address, "zoë@example.org");
  assert.equal(parsed.text, "Grüße,\nJürgen\n🎉\n");
  assert.equal(parsed.html, msg.html);
});

test("text that looks like an encoded word stays literal", async () => {
  const { parsed } = await roundTrip({ from: { address: "a@b.example" }, to: "c@d.example", subject: "=?UTF-8?B?SGk=?= there", text: "x" });
  assert.equal(parsed.subject, "=?UTF-8?B?SGk=?= there");
});

test("long headers fold at spaces; long body lines go base64", async () => {
  const subject = Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ");
  const longLine = "y".repeat(2500);
  const msg: MimeMessage = { from: { address: "a@b.example" }, to: "c@d.example", subject, text: `${longLine}\n`, html: `<p>${longLine}</p>`, headers: { "X-Long": subject } };
  const { raw, parsed } = await roundTrip(msg);
  assertWellFormed(raw);
  for (const line of headerBlock(raw).split("\r\n")) assert.ok(line.length <= 78, `header line of ${line.length}: ${line}`);
  assert.equal(parsed.subject, subject);
  assert.equal(parsed.headers.get("x-long"), subject);
  assert.equal(parsed.text, `${longLine}\n`);
  assert.equal(parsed.html, `<p>${longLine}</p>`);
  assert.match(raw, /Content-Transfer-Encoding: base64/);
});

test("a text-only mail is one text/plain part; an internationalised domain goes in IDNA form", async () => {
  const { raw, parsed } = await roundTrip({ from: { address: "a@b.example" }, to: "bob@bücher.example", subject: "s", text: "only text" });
  assert.doesNotMatch(raw, /multipart/);
  assert.equal(parsed.text, "only text\n");
  assert.match(headerBlock(raw), /^To: bob@xn--bcher-kva\.example$/m);
});

test("a header value or sender name with a line break is refused, never emitted", () => {
  assert.throws(() => headerLine("Subject", "Hi\r\nBcc: eve@example.org"), /line break/);
  assert.throws(() => buildMime({ from: { address: "a@b.example" }, to: "c@d.example", subject: "x\ny", text: "" }), /line break/);
  assert.throws(() => buildMime({ from: { name: "A\rB", address: "a@b.example" }, to: "c@d.example", subject: "x", text: "" }), /line break/);
  assert.throws(() => buildMime({ from: { address: "a@b.example" }, to: "c@d.example", subject: "x", text: "", headers: { "X-A": "1\n2" } }), /line break/);
});
