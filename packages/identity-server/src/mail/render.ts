/**
 * `renderMail`: variables in, a finished message out (subject, extra headers, text and HTML).
 * The outbox stores exactly this; `mime.ts` later turns it into MIME with a fresh random
 * boundary and encodes the headers.
 */
import { mailContext, type ContextOptions, type MailTemplateName } from "./context.js";
import { renderBuiltin } from "./builtin.js";
import { decodeEncodedWords, parseRenderedMessage } from "./parse-message.js";
import { DEFAULT_SYDENT_BRAND, findTemplateFile, pythonQuote, renderTemplateFile } from "./sydent-templates.js";
import { escapeHtml, headerSafe } from "./text.js";

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
  let text = parsed.text ?? htmlToText(parsed.html ?? "");
  let html = parsed.html;
  if (template === "invite") {
    const fix = (body: string, forHtml: boolean) => retargetSignUrls(body, ctx.vars, forHtml);
    text = fix(text, false);
    if (html !== undefined) html = fix(html, true);
  }
  return { subject, headers, text, ...(html !== undefined ? { html } : {}) };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Sydent's stock invite templates hard-code the sign URL's host (`https://matrix.org/…/api/v1/
 * sign-ed25519?token=…&private_key=…`, URL-encoded inside the join link). Such a link can only
 * work on the identity server that stored the invite, so any sign URL carrying *this* invite's
 * token and key is pointed at ours (`sign_url`), plain, HTML-escaped or URL-encoded. Operators can
 * then use Sydent's templates unchanged.
 */
export function retargetSignUrls(body: string, vars: Record<string, string>, forHtml: boolean): string {
  const token = vars.token;
  const key = vars.ephemeral_private_key;
  const ours = vars.sign_url;
  if (!token || !key || !ours) return body;
  const alt = (forms: string[]) => `(?:${[...new Set(forms)].map(escapeRegExp).join("|")})`;
  const tok = alt([token, encodeURIComponent(token), pythonQuote(token, "/")]);
  const k = alt([key, encodeURIComponent(key), pythonQuote(key, "/")]);
  const path = "/_matrix/identity/(?:api/v1|v2)/sign-ed25519";
  const plain = new RegExp(`https?://[^\\s"'<>/?#]+${path}\\?token=${tok}&(?:amp;)?private_key=${k}`, "g");
  const encPath = "%2F_matrix%2Fidentity%2F(?:api%2Fv1|v2)%2Fsign-ed25519";
  const encTok = alt([encodeURIComponent(token), pythonQuote(token, "")]);
  const encKey = alt([encodeURIComponent(key), pythonQuote(key, ""), pythonQuote(key, "/")]);
  const encoded = new RegExp(`https?%3A%2F%2F[A-Za-z0-9._~%-]+?${encPath}%3Ftoken%3D${encTok}%26private_key%3D${encKey}`, "g");
  return body
    .replace(encoded, () => encodeURIComponent(ours))
    .replace(plain, () => (forHtml ? escapeHtml(ours) : ours));
}
