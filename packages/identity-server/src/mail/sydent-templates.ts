/**
 * Sydent template compatibility (issue 3, DECISIONS "Mail"): an operator's template directory
 * laid out like Sydent's `templates.path` — `<dir>/<brand>/invite_template.eml.j2`,
 * `<dir>/<brand>/verification_template.eml.j2` (or the same files directly in `<dir>`) —
 * rendered with nunjucks, a Jinja2-compatible engine, with autoescaping on as Sydent's Jinja
 * environment has it (its templates mark text-part values `|safe`). Legacy `*.eml` files
 * (Python `%(name)s` with `_forhtml` / `_forurl` variants) work too.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { randomInt } from "node:crypto";
import { createRequire } from "node:module";
import type Nunjucks from "nunjucks";

/** nunjucks is loaded on the first Sydent template rendered, not at start (most servers use the built-in templates). */
let nunjucksModule: typeof Nunjucks | undefined;
function nunjucksLib(): typeof Nunjucks {
  return (nunjucksModule ??= createRequire(import.meta.url)("nunjucks") as typeof Nunjucks);
}
import { MailTemplateError, pythonFormat, type MailTemplateName, type TemplateContext } from "./context.js";

const FILE_OF: Record<MailTemplateName, string | undefined> = {
  validation: "verification_template.eml",
  invite: "invite_template.eml",
  // Sydent sends SMS from a config string, not a template file.
  "validation-msisdn": undefined,
};

/** Sydent's `brand.default`. */
export const DEFAULT_SYDENT_BRAND = "matrix-org";

const BRAND = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;

export interface TemplateFile {
  /** Path relative to the template directory (nunjucks name). */
  name: string;
  path: string;
  engine: "jinja" | "python";
}

const found = new Map<string, TemplateFile | null>();
const environments = new Map<string, Nunjucks.Environment>();
const legacyTexts = new Map<string, string>();

/**
 * Which file renders `template` for `brand`: the brand's directory, then the default brand's,
 * then the directory itself; `.eml.j2` before `.eml`. Undefined: use the built-in template.
 * Results are cached (templates are read once per process, like Sydent).
 */
export function findTemplateFile(templateDir: string, template: MailTemplateName, brand?: string, defaultBrand = DEFAULT_SYDENT_BRAND): TemplateFile | undefined {
  const file = FILE_OF[template];
  if (file === undefined) return undefined;
  const key = `${templateDir}\u0000${brand ?? ""}\u0000${defaultBrand}\u0000${template}`;
  const cached = found.get(key);
  if (cached !== undefined) return cached ?? undefined;
  const dirs: string[] = [];
  for (const b of [brand, defaultBrand]) {
    if (b !== undefined && BRAND.test(b) && b !== ".." && !dirs.includes(b)) dirs.push(b);
  }
  dirs.push("");
  let result: TemplateFile | null = null;
  outer: for (const d of dirs) {
    for (const [suffix, engine] of [
      [".j2", "jinja"],
      ["", "python"],
    ] as const) {
      const name = d === "" ? `${file}${suffix}` : `${d}/${file}${suffix}`;
      const path = join(templateDir, name);
      if (existsSync(path)) {
        result = { name, path, engine };
        break outer;
      }
    }
  }
  found.set(key, result);
  return result ?? undefined;
}

/** Python's `urllib.parse.quote(s, safe)`: keeps letters, digits, `_.-~` and `safe`; UTF-8 percent-encodes the rest. */
export function pythonQuote(value: string, safe = "/"): string {
  let out = "";
  for (const byte of Buffer.from(value, "utf8")) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9_.\-~]/.test(c) || (byte < 128 && safe.includes(c))) out += c;
    else out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Jinja2's `urlencode` filter: strings keep `/`; mappings and pair lists become a query string. */
function jinjaUrlencode(value: unknown): string {
  const scalar = (v: unknown) => (typeof v === "string" ? v : v === undefined || v === null ? "" : String(v));
  if (value !== null && typeof value === "object") {
    const pairs: [unknown, unknown][] = Array.isArray(value)
      ? value.filter((p): p is [unknown, unknown] => Array.isArray(p) && p.length === 2)
      : Object.entries(value);
    return pairs.map(([k, v]) => `${pythonQuote(scalar(k), "").replace(/%20/g, "+")}=${pythonQuote(scalar(v), "").replace(/%20/g, "+")}`).join("&");
  }
  return pythonQuote(scalar(value), "/");
}

let jinjaCompat = false;

type MemberLookup = (obj: unknown, val: unknown, ...rest: unknown[]) => unknown;

/** Python `str` methods templates call on strings (`name.upper()`, `url.startswith("https")`). */
const STRING_METHODS: Record<string, (s: string, ...args: unknown[]) => unknown> = {
  upper: (s) => s.toUpperCase(),
  lower: (s) => s.toLowerCase(),
  strip: (s) => s.trim(),
  lstrip: (s) => s.trimStart(),
  rstrip: (s) => s.trimEnd(),
  title: (s) => s.replace(/\w\S*/g, (w) => w.charAt(0).toUpperCase() + w.slice(1).toLowerCase()),
  capitalize: (s) => s.charAt(0).toUpperCase() + s.slice(1).toLowerCase(),
  startswith: (s, p) => s.startsWith(String(p)),
  endswith: (s, p) => s.endsWith(String(p)),
  replace: (s, a, b) => s.split(String(a)).join(String(b)),
};

/**
 * Jinja's Python-isms on top of nunjucks: its own compat layer (slices, True/False/None, list
 * and dict methods), plus string slices that stay strings (`name[:25]`) and common str methods.
 */
function installPythonisms(): void {
  const nunjucks = nunjucksLib();
  nunjucks.installJinjaCompat();
  const runtime = (nunjucks as unknown as { runtime: { memberLookup: MemberLookup } }).runtime;
  const compat = runtime.memberLookup;
  runtime.memberLookup = function memberLookup(this: unknown, obj: unknown, val: unknown, ...rest: unknown[]): unknown {
    if (typeof obj === "string") {
      if (rest.length === 2) {
        const r = compat.call(this, obj, val, ...rest);
        return Array.isArray(r) ? r.join("") : r;
      }
      const method = typeof val === "string" && Object.hasOwn(STRING_METHODS, val) ? STRING_METHODS[val] : undefined;
      if (method) return (...args: unknown[]) => method(obj, ...args);
    }
    return compat.call(this, obj, val, ...rest);
  };
}

function environment(templateDir: string): Nunjucks.Environment {
  let env = environments.get(templateDir);
  if (!env) {
    const nunjucks = nunjucksLib();
    if (!jinjaCompat) {
      installPythonisms();
      jinjaCompat = true;
    }
    env = new nunjucks.Environment(new nunjucks.FileSystemLoader(templateDir, { noCache: false }), {
      autoescape: true,
      throwOnUndefined: false,
    });
    env.addFilter("urlencode", jinjaUrlencode);
    environments.set(templateDir, env);
  }
  return env;
}

/** Python's `html.escape(s, quote=True)`. */
function pythonHtmlEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#x27;");
}

function boundaryToken(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  let s = "";
  for (let i = 0; i < 32; i++) s += alphabet[randomInt(alphabet.length)];
  return s;
}

export interface SydentRenderExtras {
  from: string;
  now: number;
}

/**
 * Renders a Sydent template file with Sydent's variables plus the ones its `sendEmail` adds
 * (`messageid`, `date`, `to`, `from`, `multipart_boundary`). Returns the whole message text.
 */
export function renderTemplateFile(templateDir: string, file: TemplateFile, vars: TemplateContext, extras: SydentRenderExtras): string {
  const context: TemplateContext = {
    ...vars,
    messageid: `<${extras.now}${boundaryToken().slice(0, 16)}@beckon>`,
    date: new Date(extras.now).toUTCString(),
    from: extras.from,
    multipart_boundary: boundaryToken(),
  };
  try {
    if (file.engine === "jinja") return environment(templateDir).render(file.name, context);
    let text = legacyTexts.get(file.path);
    if (text === undefined) {
      text = readFileSync(file.path, "utf8");
      legacyTexts.set(file.path, text);
    }
    const all: Record<string, string> = {};
    for (const [k, v] of Object.entries(context)) {
      all[k] = v;
      all[`${k}_forhtml`] = pythonHtmlEscape(v);
      all[`${k}_forurl`] = pythonQuote(v, "/");
    }
    return pythonFormat(text, all);
  } catch (e) {
    if (e instanceof MailTemplateError) throw e;
    throw new MailTemplateError(`template ${file.name} failed to render: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}
