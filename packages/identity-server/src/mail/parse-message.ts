/**
 * Reads a rendered Sydent template (a whole RFC 5322 message: headers, a blank line, then a
 * single part or multipart body) into headers and the text and HTML bodies. We send those
 * parts again through `mime.ts`, which builds a fresh message with its own random boundary;
 * nothing of the template's header block reaches the wire except what render.ts allows.
 */
import { TextDecoder } from "node:util";
import { MailTemplateError } from "./context.js";

export interface ParsedMessage {
  /** Unfolded headers in order, names as written. */
  headers: [string, string][];
  text?: string;
  html?: string;
}

function parseHeaderBlock(block: string): [string, string][] {
  const headers: [string, string][] = [];
  for (const line of block.split("\n")) {
    if (line === "") continue;
    if (/^[ \t]/.test(line)) {
      const last = headers[headers.length - 1];
      if (!last) throw new MailTemplateError("template: continuation line before any header");
      last[1] = `${last[1]} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0 || !/^[!-9;-~]+$/.test(line.slice(0, colon))) {
      throw new MailTemplateError(`template: malformed header line "${line.slice(0, 40)}"`);
    }
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  return headers;
}

function header(headers: [string, string][], name: string): string | undefined {
  const lower = name.toLowerCase();
  return headers.find(([n]) => n.toLowerCase() === lower)?.[1];
}

function param(value: string, name: string): string | undefined {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, "i").exec(value);
  return m ? (m[1] ?? m[2]) : undefined;
}

function decoder(charset: string | undefined): TextDecoder {
  try {
    return new TextDecoder(charset ?? "utf-8");
  } catch {
    return new TextDecoder("utf-8");
  }
}

function decodeQuotedPrintable(body: string): Uint8Array {
  const soft = body.replace(/=\n/g, "");
  const bytes: number[] = [];
  for (let i = 0; i < soft.length; i++) {
    const c = soft[i] ?? "";
    const hex = soft.slice(i + 1, i + 3);
    if (c === "=" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      for (const b of Buffer.from(c === "\n" ? "\r\n" : c, "utf8")) bytes.push(b);
    }
  }
  return Uint8Array.from(bytes);
}

function decodeBody(body: string, headers: [string, string][], contentType: string): string {
  const cte = (header(headers, "Content-Transfer-Encoding") ?? "").trim().toLowerCase();
  const charset = param(contentType, "charset");
  if (cte === "base64") return decoder(charset).decode(Buffer.from(body.replace(/\s+/g, ""), "base64")).replace(/\r\n/g, "\n");
  if (cte === "quoted-printable") return decoder(charset).decode(decodeQuotedPrintable(body)).replace(/\r\n/g, "\n");
  // 7bit / 8bit / binary: the rendered template is already text.
  return body;
}

function walk(headers: [string, string][], body: string, out: ParsedMessage, depth: number): void {
  if (depth > 5) throw new MailTemplateError("template: MIME parts nested too deeply");
  const contentType = header(headers, "Content-Type") ?? "text/plain; charset=UTF-8";
  const type = (contentType.split(";")[0] ?? "").trim().toLowerCase();
  if (type.startsWith("multipart/")) {
    const boundary = param(contentType, "boundary");
    if (!boundary) throw new MailTemplateError("template: multipart without a boundary");
    const delimiter = `--${boundary}`;
    let current: string[] | undefined;
    for (const line of body.split("\n")) {
      const trimmed = line.trimEnd();
      if (trimmed === delimiter || trimmed === `${delimiter}--`) {
        if (current) walkPart(current.join("\n"), out, depth + 1);
        if (trimmed !== delimiter) return;
        current = [];
      } else if (current) {
        current.push(line);
      }
    }
    if (current) walkPart(current.join("\n"), out, depth + 1);
    return;
  }
  const decoded = decodeBody(body, headers, contentType).replace(/\n+$/, "\n");
  if (type === "text/html") out.html ??= decoded;
  else if (type === "text/plain") out.text ??= decoded;
}

function splitEntity(raw: string): { headers: [string, string][]; body: string } {
  const blank = raw.indexOf("\n\n");
  if (blank < 0) return { headers: parseHeaderBlock(raw), body: "" };
  return { headers: parseHeaderBlock(raw.slice(0, blank)), body: raw.slice(blank + 2) };
}

function walkPart(raw: string, out: ParsedMessage, depth: number): void {
  // A part with no headers starts with the blank line itself.
  const { headers, body } = raw.startsWith("\n") ? { headers: [], body: raw.slice(1) } : splitEntity(raw);
  walk(headers, body, out, depth);
}

/** Decodes RFC 2047 encoded words (`=?utf-8?q?…?=`, `=?UTF-8?B?…?=`) in a header value. */
export function decodeEncodedWords(value: string): string {
  return value
    .replace(/(\?=)\s+(=\?)/g, "$1$2")
    .replace(/=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g, (_m, charset: string, enc: string, text: string) => {
      const bytes =
        enc.toLowerCase() === "b"
          ? Buffer.from(text, "base64")
          : decodeQuotedPrintable(text.replace(/_/g, " "));
      return decoder(charset.split("*")[0]).decode(bytes);
    });
}

/** Parses a rendered message (LF or CRLF line ends). */
export function parseRenderedMessage(rendered: string): ParsedMessage {
  const raw = rendered.replace(/\r\n?/g, "\n").replace(/^\s*\n/, "");
  const { headers, body } = splitEntity(raw);
  if (headers.length === 0) throw new MailTemplateError("template: no headers");
  const out: ParsedMessage = { headers };
  walk(headers, body, out, 0);
  if (out.text === undefined && out.html === undefined) throw new MailTemplateError("template: no text/plain or text/html part");
  return out;
}
