/**
 * Beckon's own mail texts (plain text + HTML), used unless the operator configures a Sydent
 * template directory. Every variable is HTML-escaped in the HTML part; values are already
 * single-line (context.ts), so nothing a user chose can add lines to the text part either.
 */
import type { MailTemplateName, TemplateContext } from "./context.js";
import { escapeHtml } from "./text.js";

export interface MailBody {
  text: string;
  html?: string;
}

function v(vars: TemplateContext, key: string): string {
  return vars[key] ?? "";
}

function page(title: string, inner: string): string {
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title>`,
    "</head>",
    '<body style="margin:0;padding:20px;font-family:Helvetica,Arial,sans-serif;font-size:15px;color:#222">',
    '<div style="max-width:600px">',
    inner,
    "</div>",
    "</body>",
    "</html>",
    "",
  ].join("\n");
}

function button(href: string, label: string): string {
  return (
    `<p><a href="${escapeHtml(href)}" style="display:inline-block;padding:10px 18px;background:#0dbd8b;` +
    `color:#fff;text-decoration:none;border-radius:6px">${escapeHtml(label)}</a></p>`
  );
}

function code(text: string): string {
  return `<code style="word-break:break-all">${escapeHtml(text)}</code>`;
}

function validation(vars: TemplateContext): MailBody {
  const link = v(vars, "link");
  const token = v(vars, "token");
  const text = [
    "Hello,",
    "",
    "We have received a request to use this email address with a Matrix identity server.",
    "If it was you, follow this link to confirm your email address:",
    "",
    link,
    "",
    `If your client asks for a code, the code is ${token}`,
    "",
    "If you did not ask for this, you can ignore this mail.",
    "",
  ].join("\n");
  const html = page(
    v(vars, "subject_header_value"),
    [
      "<p>Hello,</p>",
      "<p>We have received a request to use this email address with a Matrix identity server. " +
        "If it was you, follow this link to confirm your email address:</p>",
      button(link, "Confirm your email address"),
      `<p>Or open this address in your browser: ${code(link)}</p>`,
      `<p>If your client asks for a code, the code is ${code(token)}</p>`,
      "<p>If you did not ask for this, you can ignore this mail.</p>",
    ].join("\n"),
  );
  return { text, html };
}

function invite(vars: TemplateContext): MailBody {
  const space = v(vars, "room_type") === "m.space";
  const kind = space ? "space" : "room";
  const roomName = v(vars, "room_name");
  const alias = v(vars, "room_alias");
  const inviter = v(vars, "inviter");
  const joinLink = v(vars, "join_link");
  const sign = v(vars, "sign_url");
  const what = roomName !== "" ? `the ${kind} "${roomName}"` : alias !== "" ? `the ${kind} ${alias}` : `a ${kind}`;
  const whatHtml =
    roomName !== ""
      ? `the ${kind} <b>${escapeHtml(roomName)}</b>`
      : alias !== ""
        ? `the ${kind} <b>${escapeHtml(alias)}</b>`
        : `a ${kind}`;
  const details: string[] = [];
  if (roomName !== "") details.push(`Name: ${roomName}`);
  if (alias !== "") details.push(`Address: ${alias}`);
  details.push(`Invited by: ${inviter}`);

  const text = [
    "Hi,",
    "",
    `${inviter} has invited you to ${what} on Matrix.`,
    "",
    ...details,
    "",
    "To join, open this link (it opens Element in your browser; any Matrix client works):",
    "",
    joinLink,
    "",
    "If your Matrix client asks for the invite's signing link, give it this one:",
    "",
    sign,
    "",
    `This invitation was sent to ${v(vars, "to")}. If you don't know ${v(vars, "sender")}, you can ignore this mail.`,
    "",
  ].join("\n");
  const html = page(
    v(vars, "subject_header_value"),
    [
      "<p>Hi,</p>",
      `<p>${escapeHtml(inviter)} has invited you to ${whatHtml} on Matrix.</p>`,
      `<ul>${details.map((d) => `<li>${escapeHtml(d)}</li>`).join("")}</ul>`,
      button(joinLink, `Join the ${kind}`),
      "<p>The button opens Element in your browser; any Matrix client works. " +
        `If your client asks for the invite's signing link, give it this one: ${code(sign)}</p>`,
      `<p style="color:#666">This invitation was sent to ${escapeHtml(v(vars, "to"))}. ` +
        `If you don't know ${escapeHtml(v(vars, "sender"))}, you can ignore this mail.</p>`,
    ].join("\n"),
  );
  return { text, html };
}

function msisdn(vars: TemplateContext): MailBody {
  return { text: `Your code is ${v(vars, "token")}\n` };
}

export function renderBuiltin(template: MailTemplateName, vars: TemplateContext): MailBody {
  switch (template) {
    case "validation":
      return validation(vars);
    case "invite":
      return invite(vars);
    case "validation-msisdn":
      return msisdn(vars);
  }
}
