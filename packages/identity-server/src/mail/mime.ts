/**
 * The MIME text of an outgoing mail (RFC 5322 headers, RFC 2045–2047 bodies and encoded
 * words), built in one pass and carried by `smtp-client.ts`. nodemailer's MIME builder, used
 * before, cost ~0.35 ms of CPU per mail here (quoted-printable streams, per-part random
 * boundaries, header normalisation), more than a whole `store-invite`'s database work.
 *
 * Every header value reaching this module is already single-line (`headerSafe`); this module
 * still refuses CR/LF so that nothing it is handed can start a header of its own.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { domainToASCII } from "node:url";

export interface MimeMessage {
  from: { name?: string; address: string };
  to: string;
  subject: string;
  text: string;
  html?: string;
  /** Extra headers, names already checked by the caller. */
  headers?: Record<string, string>;
  /** Date header time (default now). */
  date?: Date;
}

const ASCII_PRINTABLE = /^[\x20-\x7e]*$/;
const ASCII = /^[\x00-\x7f]*$/;
const LINE_BREAK = /[\r\n]/;

/** Encoded words (`=?UTF-8?B?…?=`, ≤ 75 characters each), whole code points per word. */
function encodedWords(value: string): string[] {
  const words: string[] = [];
  let chunk = "";
  let bytes = 0;
  for (const ch of value) {
    const n = Buffer.byteLength(ch, "utf8");
    // 45 bytes are 60 base64 characters: with `=?UTF-8?B?` and `?=`, 72.
    if (bytes + n > 45) {
      words.push(`=?UTF-8?B?${Buffer.from(chunk, "utf8").toString("base64")}?=`);
      chunk = "";
      bytes = 0;
    }
    chunk += ch;
    bytes += n;
  }
  if (chunk !== "" || words.length === 0) words.push(`=?UTF-8?B?${Buffer.from(chunk, "utf8").toString("base64")}?=`);
  return words;
}

/**
 * `Name: value` folded at spaces to lines of about 78 characters. A value with anything but
 * printable ASCII (or that looks like an encoded word itself) is sent as encoded words.
 */
export function headerLine(name: string, value: string): string {
  if (LINE_BREAK.test(value) || LINE_BREAK.test(name)) throw new Error(`header ${name} contains a line break`);
  if (!ASCII_PRINTABLE.test(value) || value.includes("=?")) return `${name}: ${encodedWords(value).join("\r\n ")}\r\n`;
  return `${fold(`${name}: ${value}`)}\r\n`;
}

/** Folds an ASCII header line before spaces so lines stay near 78 characters (never splitting a word). */
function fold(line: string): string {
  if (line.length <= 78) return line;
  let out = "";
  let rest = line;
  while (rest.length > 78) {
    let cut = rest.lastIndexOf(" ", 78);
    if (cut <= 0) cut = rest.indexOf(" ", 79);
    if (cut <= 0) break;
    out += `${rest.slice(0, cut)}\r\n`;
    rest = rest.slice(cut); // the space starts the continuation line
  }
  return out + rest;
}

/** An address for a header: a domain in IDNA form when the local part is ASCII (else SMTPUTF8 carries it as is). */
function headerAddress(address: string): string {
  const at = address.lastIndexOf("@");
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (at <= 0 || !ASCII.test(local) || ASCII.test(domain)) return address;
  const idna = domainToASCII(domain);
  return idna === "" ? address : `${local}@${idna}`;
}

/** `"Name" <addr>` with the name quoted, or as encoded words when it is not printable ASCII. */
function mailbox(m: { name?: string; address: string }): string {
  const addr = `<${headerAddress(m.address)}>`;
  if (m.name === undefined || m.name === "") return addr;
  if (LINE_BREAK.test(m.name)) throw new Error("sender name contains a line break");
  if (!ASCII_PRINTABLE.test(m.name) || m.name.includes("=?")) return `${encodedWords(m.name).join("\r\n ")}\r\n ${addr}`;
  // A phrase of atoms goes as it is; anything else as a quoted string.
  if (/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+$/.test(m.name)) return `${m.name} ${addr}`;
  return `"${m.name.replace(/[\\"]/g, "\\$&")}" ${addr}`;
}

/**
 * One body part: 7bit when it is ASCII with lines ≤ 998 octets, else base64 of its UTF-8. In a
 * multipart body the CRLF before the next boundary belongs to the boundary, so one is added
 * after the content (a body's own final line break survives).
 */
function part(contentType: string, body: string, inMultipart: boolean): string {
  const crlf = body.replace(/\r\n|\r|\n/g, "\r\n");
  const sevenBit = ASCII.test(crlf) && !crlf.includes("\0") && crlf.split("\r\n").every((l) => l.length <= 998);
  const content = sevenBit ? crlf : Buffer.from(crlf, "utf8").toString("base64").replace(/.{76}/g, "$&\r\n");
  const end = inMultipart || !content.endsWith("\r\n") ? "\r\n" : "";
  return `Content-Type: ${contentType}; charset=utf-8\r\nContent-Transfer-Encoding: ${sevenBit ? "7bit" : "base64"}\r\n\r\n${content}${end}`;
}

/** RFC 5322 date-time in UTC. */
function mailDate(d: Date): string {
  return d.toUTCString().replace(/GMT$/, "+0000");
}

/** The whole message, CRLF line endings, ready for SMTP DATA (dot-stuffing is the SMTP client's). */
export function buildMime(msg: MimeMessage): string {
  const domain = msg.from.address.slice(msg.from.address.lastIndexOf("@") + 1);
  let head =
    `From: ${mailbox(msg.from)}\r\n` +
    `To: ${headerAddress(msg.to)}\r\n` +
    headerLine("Subject", msg.subject) +
    `Date: ${mailDate(msg.date ?? new Date())}\r\n` +
    `Message-ID: <${randomUUID()}@${ASCII_PRINTABLE.test(domain) ? domain : domainToASCII(domain) || "localhost"}>\r\n`;
  for (const [name, value] of Object.entries(msg.headers ?? {})) head += headerLine(name, value);
  head += "MIME-Version: 1.0\r\n";
  if (msg.html === undefined) return head + part("text/plain", msg.text, false);
  const boundary = `=_beckon_${randomBytes(12).toString("hex")}`;
  return (
    head +
    `Content-Type: multipart/alternative;\r\n boundary="${boundary}"\r\n\r\n` +
    `--${boundary}\r\n${part("text/plain", msg.text, true)}` +
    `--${boundary}\r\n${part("text/html", msg.html, true)}` +
    `--${boundary}--\r\n`
  );
}
