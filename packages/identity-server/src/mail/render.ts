/**
 * `renderMail`: variables in, a finished message out (subject, extra headers, text and HTML).
 * The outbox stores exactly this; nodemailer later turns it into MIME with its own random
 * boundary and encodes the headers.
 */
import { mailContext, type ContextOptions, type MailTemplateName } from "./context.js";
import { renderBuiltin } from "./builtin.js";
import { decodeEncodedWords, parseRenderedMessage } from "./parse-message.js";
import { DEFAULT_SYDENT_BRAND, findTemplateFile, renderTemplateFile } from "./sydent-templates.js";
import { headerSafe } from "./text.js";

export interface RenderedMail {
  subject: string;
  /** Extra headers (never From/To/Subject/MIME structure); values are single-line. */
  headers: Record<string, string>;
  text: string;
  html?: string;
}

export interface RenderMailOptions extends ContextOptions {
  /** A Sydent-style template directory (`templates.path`); missing files fall back to the built-in templates. */
  templateDir?: string;
  /** Brand (sub-directory of `templateDir`), e.g. from Sydent's `?brand=` hint. */
  brand?: string;
  /** Brand used when `brand` is missing or has no templates (Sydent's `brand.default`, "matrix-org"). */
  defaultBrand?: string;
  /** The configured sender, for templates that show `{{ from }}`. */
  from?: string;
  /** Render time (the `date` of Sydent templates); defaults to now. */
  now?: number;
}

/**
 * Headers a template may add. Everything else in a template's header block (From, To, Cc, Bcc,
 * Date, Message-ID, MIME headers…) is ours to set and is ignored.
 */
const ALLOWED_TEMPLATE_HEADER = /^(x-[a-z0-9-]+|auto-submitted|precedence|list-id|list-unsubscribe|list-unsubscribe-post)$/i;

const AUTO_SUBMITTED = { "Auto-Submitted": "auto-generated" };

function htmlToText(html: string): string {
  return html
    .replace(/<(script|style)[^>]*>[\s\S]*?<\/\1>/gi, "")
    .replace(/<br\s*\/?>|<\/p>|<\/div>|<\/li>|<\/h\d>/gi, "\n")
    .replace(/<[^>]+>/g, "")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&#x27;/g, "'")
    .replace(/&amp;/g, "&")
    .replace(/\n{3,}/g, "\n\n")
    .trim()
    .concat("\n");
}

/**
 * Renders one mail. `vars.to` is the recipient (one plain address); the other variables are
 * described by {@link ValidationMailVars}, {@link InviteMailVars} and {@link MsisdnMailVars}.
 * Throws {@link MailTemplateError} for missing variables or a broken operator template.
 *
 * @example
 * const mail = renderMail("invite", { to: "bob@example.org", public_base_url: "https://id.example.org",
 *   room_id: "!r:example.org", sender: "@alice:example.org", token, ephemeral_private_key });
 */
export function renderMail(template: MailTemplateName, vars: Record<string, unknown>, options: RenderMailOptions = {}): RenderedMail {
  const ctx = mailContext(template, vars, options);
  const file =
    options.templateDir !== undefined
      ? findTemplateFile(options.templateDir, template, options.brand, options.defaultBrand ?? DEFAULT_SYDENT_BRAND)
      : undefined;
  if (options.templateDir === undefined || file === undefined) {
    const body = renderBuiltin(template, ctx.vars);
    return { subject: ctx.subject, headers: { ...AUTO_SUBMITTED }, text: body.text, ...(body.html !== undefined ? { html: body.html } : {}) };
  }
  const rendered = renderTemplateFile(options.templateDir, file, ctx.vars, { from: options.from ?? "", now: options.now ?? Date.now() });
  const parsed = parseRenderedMessage(rendered);
  const headers: Record<string, string> = { ...AUTO_SUBMITTED };
  let subject = ctx.subject;
  for (const [name, value] of parsed.headers) {
    if (name.toLowerCase() === "subject") {
      const s = headerSafe(decodeEncodedWords(value));
      if (s !== "") subject = s;
    } else if (ALLOWED_TEMPLATE_HEADER.test(name)) {
      headers[name] = headerSafe(decodeEncodedWords(value), 900);
    }
  }
  const text = parsed.text ?? htmlToText(parsed.html ?? "");
  return { subject, headers, text, ...(parsed.html !== undefined ? { html: parsed.html } : {}) };
}
