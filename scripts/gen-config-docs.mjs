#!/usr/bin/env node
/**
 * Writes docs/configuration.md: every configuration key of the homeserver and the identity
 * server with its type, default, environment variable, an example and a description.
 *
 * Sources, all read at generation time (run `npm run build` first):
 * - the config specs themselves, imported from the built packages
 *   (`homeserverConfigSpec`, `identityServerConfigSpec`): keys, nesting, and — by calling each
 *   field's validator — whether it is required, its default, and its type (from the validator's
 *   own error message for a value no field accepts);
 * - the commented sample configs that `beckon generate-config` writes (descriptions, examples);
 * - the doc comments beside each key in the servers' `src/config.ts` (descriptions the samples
 *   lack).
 *
 * Usage: node scripts/gen-config-docs.mjs [--out docs/configuration.md] [--check]
 * (`--check` exits 1 when the file on disk differs from what would be written.)
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const outArg = args.indexOf("--out");
const outFile = resolve(root, outArg >= 0 && args[outArg + 1] ? args[outArg + 1] : "docs/configuration.md");
const check = args.includes("--check");

async function importBuilt(rel) {
  const file = join(root, rel);
  if (!existsSync(file)) {
    console.error(`${rel} is missing: run \`npm run build\` first.`);
    process.exit(2);
  }
  return import(pathToFileURL(file).href);
}

const { homeserverConfigSpec } = await importBuilt("packages/homeserver/dist/config.js");
const { identityServerConfigSpec } = await importBuilt("packages/identity-server/dist/config.js");

// ---------------------------------------------------------------------------------------------
// Sample configs (beckon generate-config): comments → descriptions, values → examples.

function sampleConfigs() {
  const dir = mkdtempSync(join(tmpdir(), "beckon-config-docs-"));
  try {
    execFileSync(process.execPath, [join(root, "packages/cli/dist/bin.js"), "generate-config", "--out", dir], { stdio: "ignore" });
    return {
      hs: readFileSync(join(dir, "homeserver.yaml"), "utf8"),
      is: readFileSync(join(dir, "identity-server.yaml"), "utf8"),
    };
  } catch (e) {
    console.error(`warning: beckon generate-config failed (${e.message}); descriptions come from the sources only`);
    return { hs: "", is: "" };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Parses YAML line by line: key paths → {comment, value}. Commented-out keys count as keys. */
function parseSample(text) {
  const out = new Map();
  const stack = []; // {indent, key}
  let pending = [];
  const record = (indent, key, value, commented) => {
    while (stack.length && stack[stack.length - 1].indent >= indent) stack.pop();
    const path = [...stack.map((s) => s.key), key].join(".");
    out.set(path, { comment: pending.join(" ").trim(), value: value.trim(), commented });
    pending = [];
    const flow = /^\{(.*)\}$/.exec(value.trim());
    if (flow) {
      for (const part of flow[1].split(",")) {
        const m = /^\s*([A-Za-z0-9_]+)\s*:\s*(.*?)\s*$/.exec(part);
        if (m) out.set(`${path}.${m[1]}`, { comment: "", value: m[2], commented });
      }
    }
    if (value.trim() === "" && !commented) stack.push({ indent, key });
  };
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      pending = [];
      continue;
    }
    const commentedKey = /^(\s*)#\s*([a-z_][a-z0-9_]*):(?:\s+(.*))?$/.exec(line);
    if (commentedKey) {
      // Only a bare `# key: value` line; prose like "# sqlite:<path> …" has no space after the colon.
      record(commentedKey[1].length, commentedKey[2], commentedKey[3] ?? "", true);
      continue;
    }
    const comment = /^\s*#\s?(.*)$/.exec(line);
    if (comment) {
      pending.push(comment[1]);
      continue;
    }
    const key = /^(\s*)("?[^:#"]+"?)\s*:(?:\s+(.*))?$/.exec(line);
    if (key) record(key[1].length, key[2].replace(/"/g, ""), key[3] ?? "", false);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Doc comments in src/config.ts: key paths → text.

function parseSourceDocs(rel, startMarker, prefix = []) {
  const out = new Map();
  const file = join(root, rel);
  if (!existsSync(file)) return out;
  const lines = readFileSync(file, "utf8").split("\n");
  const start = lines.findIndex((l) => l.includes(startMarker));
  if (start < 0) return out;
  const stack = [...prefix];
  let depth = 0;
  let pending = "";
  let inDoc = false;
  let doc = [];
  for (const line of lines.slice(start + 1)) {
    const t = line.trim();
    if (inDoc) {
      const end = t.indexOf("*/");
      doc.push(t.slice(0, end >= 0 ? end : undefined).replace(/^\*\s?/, ""));
      if (end >= 0) {
        inDoc = false;
        pending = doc.join(" ").trim();
      }
      continue;
    }
    if (t.startsWith("/**")) {
      const end = t.indexOf("*/");
      if (end >= 0) pending = t.slice(3, end).trim();
      else {
        inDoc = true;
        doc = [t.slice(3).trim()];
      }
      continue;
    }
    const key = /^([a-z_][a-z0-9_]*):\s*(.*)$/.exec(t);
    if (key) {
      const path = [...stack, key[1]].join(".");
      if (pending) out.set(path, pending.replace(/`/g, "").replace(/\s+/g, " "));
      pending = "";
      if (key[2] === "{") {
        stack.push(key[1]);
        depth++;
      }
      continue;
    }
    if (/^}/.test(t)) {
      if (depth === 0) break;
      stack.pop();
      depth--;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Probing the validators.

function typeOf(validator, path) {
  let message = "";
  try {
    validator([[]], path);
    return "any";
  } catch (e) {
    message = String(e?.message ?? e);
  }
  const m = message.slice(message.indexOf(":") + 1).trim();
  if (m.includes("true or false")) return "boolean";
  if (m.includes("duration")) return "duration";
  if (m.includes("size such as")) return "size";
  if (m.includes("host:port")) return "listen address";
  if (m.startsWith("must be one of")) return `one of ${m.replace(/^must be one of\s*/, "").split(/,\s*/).map((s) => `\`${s}\``).join(", ")}`;
  if (m.includes("URL")) {
    try {
      validator("ftp://example.org", path);
      return "URL";
    } catch (e) {
      const schemes = /must use (.*)$/.exec(String(e?.message ?? ""));
      return schemes ? `URL (${schemes[1].split(" or ").join(", ")})` : "URL";
    }
  }
  if (m.includes("number")) return "number";
  if (/\[0\]/.test(message) && m.includes("string")) return "list of strings";
  if (m.includes("object")) {
    try {
      validator({ probe: 1 }, path);
      return "map";
    } catch (e) {
      return String(e?.message ?? "").includes("URL") ? "map: name → URL" : "map";
    }
  }
  if (m.includes("string")) return "string";
  return "value";
}

const UNITS = [
  ["w", 604_800_000],
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1000],
];
function formatDuration(ms) {
  for (const [u, n] of UNITS) if (ms >= n && ms % n === 0) return `${ms / n}${u}`;
  return `${ms}ms`;
}
function formatSize(b) {
  for (const [u, n] of [["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]]) if (b >= n && b % n === 0) return `${b / n}${u}`;
  return `${b}`;
}
function formatDefault(value, type) {
  if (type === "duration" && typeof value === "number") return formatDuration(value);
  if (type === "size" && typeof value === "number") return formatSize(value);
  if (type === "listen address" && value && typeof value === "object") return value.host.includes(":") ? `[${value.host}]:${value.port}` : `${value.host}:${value.port}`;
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** Descriptions for keys that have neither a sample comment nor a doc comment. */
const FALLBACK = {
  listen: "Address and port to listen on (`host:port`, `[v6]:port`, `:port` or a bare port; no host means 127.0.0.1). Put a TLS-terminating reverse proxy in front.",
  "outbound.timeout": "Timeout for each outbound request (identity server ↔ homeserver, `key_validity_url` checks).",
  "outbound.max_response_size": "Largest response body accepted from another server.",
  "rate_limits.enabled": "Turn every rate limit on or off (benchmarks turn them off).",
  "invites.lifetime": "How long a third-party invite stays usable.",
  "invites.dedupe_window": "How long a repeated invite of the same address to the same room is answered from the first one.",
  "invites.purge_interval": "How often expired invites and sessions are purged.",
  "validation.session_lifetime": "How long an email validation session (requestToken → submitToken) stays open.",
  "delivery.base_backoff": "First retry delay for an onbind delivery that failed with a retryable error.",
  "delivery.max_backoff": "Cap on the retry delay.",
  "delivery.lease": "How long one process holds a claimed delivery before another may retry it.",
  "delivery.batch_size": "Deliveries claimed per round.",
  "http.body_limit": "Largest request body accepted.",
  body_limit: "Largest request body accepted.",
  lookup_limit: "Most addresses accepted in one `lookup` request.",
  log_level: "pino log level; tokens, passwords and secrets are redacted in every log line.",
  "email.from": "The `From:` of every mail.",
  "email.brand": "Brand name used by the mail templates (Sydent's `brand`).",
  "email.redact_username_chars": "Characters of the local part kept in the redacted address the room sees.",
  "email.redact_domain_chars": "Characters of the domain kept in the redacted address the room sees.",
  "metrics.enabled": "Serve Prometheus metrics on `/metrics`.",
  "outbound.insecure_skip_tls_verify": "Test only: skip TLS certificate checks (logged loudly at start).",
  "rate_limits.request_token_ip": "validate/email/requestToken per client address.",
  "rate_limits.request_token_address": "validate/email/requestToken per email address.",
  "rate_limits.store_invite_sender": "store-invite per sender (every request comes from a homeserver).",
  "rate_limits.register_ip": "account/register per client address.",
};
/** Keys whose sample comment describes more than the key itself: the text above wins. */
const PREFER_FALLBACK = new Set(["invites.lifetime"]);

/** Plain text from a comment → safe inside a Markdown table cell (code spans are left alone). */
function mdText(text) {
  return text
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/[<>*_]/g, (ch) => ({ "<": "&lt;", ">": "&gt;", "*": "\\*", _: "\\_" })[ch])))
    .join("");
}

function describeKey(path, sample, source) {
  const parts = [];
  const s = sample.get(path)?.comment;
  const d = source.get(path);
  const f = FALLBACK[path];
  parts.push(PREFER_FALLBACK.has(path) && f ? f : s ? mdText(s) : d ? mdText(d) : f || "");
  // Leaves of a small section (rate limits) inherit the section's text.
  const parent = path.split(".").slice(0, -1).join(".");
  const leaf = path.split(".").pop();
  if (parent && (leaf === "per_second" || leaf === "burst")) {
    const sectionText = mdText(source.get(parent) || sample.get(parent)?.comment || "") || FALLBACK[parent] || "";
    const what = leaf === "per_second" ? "Sustained rate (actions per second, per key)." : "Burst: actions allowed at once before the sustained rate applies.";
    parts[0] = [sectionText.replace(/\.?$/, sectionText ? "." : ""), what].filter(Boolean).join(" ");
  }
  return parts.join(" ").replace(/\|/g, "\\|").trim();
}

function rows(spec, prefix, sample, source) {
  const out = [];
  const walk = (shape, path) => {
    for (const [key, field] of Object.entries(shape)) {
      const p = [...path, key];
      const dotted = p.join(".");
      if (typeof field === "function") {
        const type = typeOf(field, dotted);
        let def;
        try {
          const value = field(undefined, dotted);
          def = value === undefined ? "*(unset)*" : `\`${formatDefault(value, type)}\``;
        } catch {
          def = "**required**";
        }
        const ex = sample.get(dotted);
        let exValue = ex?.value ?? "";
        if (ex && exValue === "") {
          // A nested map in the sample (`map:` then `name: url` lines): show it inline.
          const children = [...sample.entries()].filter(([k]) => k.startsWith(`${dotted}.`));
          if (children.length) exValue = `{${children.map(([k, e]) => `${k.slice(dotted.length + 1)}: ${e.value}`).join(", ")}}`;
        }
        const example = exValue !== "" ? `\`${exValue.replace(/\|/g, "\\|")}\`` : "";
        out.push({
          key: dotted,
          type,
          def,
          env: `${prefix}${p.map((k) => k.toUpperCase()).join("__")}`,
          example,
          description: describeKey(dotted, sample, source),
        });
      } else if (field && typeof field === "object") {
        walk(field, p);
      }
    }
  };
  walk(spec.shape, []);
  return out;
}

function table(list) {
  const lines = ["| key | type | default | environment | example | description |", "| --- | --- | --- | --- | --- | --- |"];
  for (const r of list) lines.push(`| \`${r.key}\` | ${r.type} | ${r.def} | \`${r.env}\` | ${r.example} | ${r.description} |`);
  return lines.join("\n");
}

const samples = sampleConfigs();
const hsSample = parseSample(samples.hs);
const isSample = parseSample(samples.is);
const kitDocs = parseSourceDocs("packages/server-kit/src/config.ts", "export const outboundSection", ["outbound"]);
const hsDocs = new Map([...kitDocs, ...parseSourceDocs("packages/homeserver/src/config.ts", "export const homeserverConfigSpec")]);
const isDocs = new Map([...kitDocs, ...parseSourceDocs("packages/identity-server/src/config.ts", "const identityServerConfigShape")]);

const hsRows = rows(homeserverConfigSpec, "BECKON_HS_", hsSample, hsDocs);
const isRows = rows(identityServerConfigSpec, "BECKON_IS_", isSample, isDocs);

const doc = `# Configuration reference

<!-- Generated by scripts/gen-config-docs.mjs from the config specs of the built servers
     (packages/homeserver/dist/config.js, packages/identity-server/dist/config.js), the sample
     configs of \`beckon generate-config\` and the doc comments in src/config.ts.
     Do not edit by hand: run \`npm run build && node scripts/gen-config-docs.mjs\`. -->

Both servers read one YAML file (\`beckon homeserver --config homeserver.yaml\`,
\`beckon identity-server --config identity-server.yaml\`), then the environment, then command-line
overrides; each later source wins key by key. Every problem is reported at once, and
\`--check-config\` validates a file without starting the server. \`beckon generate-config --out DIR\`
writes commented samples of both files (the *example* column below comes from them; they are
production-minded, so their rate limits are stricter than the defaults).

**Environment.** \`BECKON_HS_*\` (homeserver) and \`BECKON_IS_*\` (identity server): the key in
upper case, \`__\` to descend into a section — \`BECKON_HS_RATE_LIMITS__ENABLED=false\` sets
\`rate_limits.enabled\`. A value is taken as a string when the key accepts one, else parsed as YAML
(\`false\`, \`30\`, \`{"localhost:8090": "http://127.0.0.1:8090"}\`). \`BECKON_HS_CONFIG\` /
\`BECKON_IS_CONFIG\` may name the file. An unknown variable under either prefix is an error.

**Value formats.** *duration*: \`500ms\`, \`10s\`, \`10m\`, \`24h\`, \`30d\`, \`2w\`, combinations
(\`1h30m\`) or a number of milliseconds. *size*: \`512\`, \`64k\`, \`1MiB\`, \`2GB\` (powers of 1024) or
a number of bytes. *listen address*: \`127.0.0.1:8008\`, \`[::1]:8008\`, \`:8008\` or a bare port (no
host means 127.0.0.1). *database_url*: \`sqlite:<path>\` or \`postgres://user:password@host/db\`.

\`beckon up\` writes both files for you into its data directory (\`.beckon/homeserver.yaml\`,
\`.beckon/identity-server.yaml\`); its own options and \`beckon.yaml\` keys are in
[packages/cli/README.md](../packages/cli/README.md).

## Homeserver (\`beckon homeserver\`)

${hsRows.length} keys.

${table(hsRows)}

## Identity server (\`beckon identity-server\`)

${isRows.length} keys. \`terms\` is a map of policy id → \`{version, <language>: {name, url}}\`, e.g.

\`\`\`yaml
terms:
  privacy_policy:
    version: "1.0"
    en: { name: Privacy Policy, url: "https://id.example.org/privacy-1.0.html" }
\`\`\`

${table(isRows)}
`;

if (check) {
  const current = existsSync(outFile) ? readFileSync(outFile, "utf8") : "";
  if (current !== doc) {
    console.error(`${outFile} is out of date: run node scripts/gen-config-docs.mjs`);
    process.exit(1);
  }
  console.log(`${outFile} is up to date`);
} else {
  writeFileSync(outFile, doc);
  console.log(`wrote ${outFile} (${hsRows.length} homeserver keys, ${isRows.length} identity-server keys)`);
}
