/**
 * fast-check generators for hostile HTTP requests, derived from `@beckon/protocol` endpoint
 * descriptors: method, path template (and aliases), auth kind, body and query. A generated
 * {@link FuzzCase} is symbolic (credentials and large payloads are resolved when sent) so
 * shrinking stays cheap and a failure prints a readable, minimal request.
 */
import fc from "fast-check";
import { allPaths, pathParams, type EndpointDescriptor } from "@beckon/protocol";

/** What an endpoint looks like when called correctly (the seed of mutated-valid requests). */
export interface Example {
  body?: unknown;
  query?: Record<string, string>;
  params?: Record<string, string>;
}

/** A credential, resolved at send time. */
export type AuthChoice =
  | { kind: "valid" }
  | { kind: "none" }
  | { kind: "header"; value: string }
  | { kind: "query"; value: string }
  | { kind: "valid-in-query" }
  | { kind: "valid-mangled"; how: "suffix" | "case" | "truncate" | "double" };

/** How the body travels. */
export type BodyChoice =
  | { kind: "none" }
  | { kind: "json"; value: unknown }
  | { kind: "text"; text: string }
  | { kind: "bytes"; hex: string }
  | { kind: "oversized"; bytes: number }
  | { kind: "deep"; depth: number; open: string };

export interface FuzzCase {
  target: string;
  method: string;
  /** The template used (path or alias), for the report. */
  template: string;
  /** The path with parameters filled (already encoded as sent). */
  path: string;
  /** Raw query string, without `?` ("" for none). */
  query: string;
  auth: AuthChoice;
  contentType: string | null;
  extraHeaders: Record<string, string>;
  body: BodyChoice;
}

// ── values ───────────────────────────────────────────────────────────────────

/** Strings that break naive identifier, path and text handling. */
export const NASTY_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\r\n",
  "x\r\nBcc: victim@example.org",
  "..",
  "../../etc/passwd",
  "%00",
  "%",
  "\ud800",
  "\udfff\ud800",
  "\u202e",
  "\ufeff",
  "💥",
  "@",
  "@:",
  "@a:b:c",
  "@alice:hs.fuzz.test\u0000",
  "!",
  "!:",
  "!room:[::1]:8448",
  "!room:[::1",
  "#alias:",
  "$event",
  "ed25519:",
  "<script>alert(1)</script>",
  "{{ 7*7 }}",
  "' OR 1=1 --",
  "__proto__",
  "constructor",
  "null",
  "undefined",
  "NaN",
  "-0",
  "1e400",
  "9007199254740993",
  "a@b",
  "a@b@c",
  "\"quoted\"@example.org",
  "Alice <alice@example.org>",
  "alice@example.org\r\nSubject: pwned",
  "xn--e1afmkfd.xn--p1ai",
];

/** JSON values of every type and edge. */
const nastyScalar: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    false,
    0,
    -0,
    -1,
    1.5,
    -1.5,
    1e308,
    -1e308,
    Number.MAX_SAFE_INTEGER + 2,
    -(2 ** 63),
    2 ** 64,
    5e-324,
    "",
    [],
    {},
    [null],
    { "": "" },
  ),
  fc.constantFrom(...NASTY_STRINGS),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 12 }),
  fc.integer({ min: 256, max: 70_000 }).map((n) => "x".repeat(n)),
);

const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: nastyScalar },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.array(nastyScalar, { maxLength: 5 }) },
  { weight: 1, arbitrary: fc.integer({ min: 2, max: 80 }).map((d) => nest(d, "x")) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 20_000 }).map((n) => Array.from({ length: n }, (_, i) => i)) },
  { weight: 1, arbitrary: fc.dictionary(fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "", "a.b"), nastyScalar, { maxKeys: 3 }) },
);

/** Edge values of the same JSON type as `x`: they pass type checks and reach handler logic. */
function sameTypeEdge(x: unknown): fc.Arbitrary<unknown> {
  if (typeof x === "number") {
    return fc.oneof(
      fc.constantFrom(0, -0, -1, 1, 2 ** 31, 2 ** 31 - 1, -(2 ** 31), 2 ** 32, 1e6, 1e9, 1e12, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER),
      fc.integer(),
      fc.maxSafeInteger(),
    );
  }
  if (typeof x === "string") {
    return fc.oneof(
      // the commonest triggers get their own weight: empty, markup, NUL, line breaks
      fc.constantFrom("", "<b>x</b>", `${x}\u0000`, `${x}\r\nX: y`),
      fc.constantFrom(...NASTY_STRINGS),
      fc.constant(x.toUpperCase()),
      fc.constant(` ${x} `),
      fc.string({ unit: "grapheme", maxLength: 30 }),
      fc.integer({ min: 100, max: 5000 }).map((n) => x + "x".repeat(n)),
    );
  }
  if (typeof x === "boolean") return fc.boolean();
  if (Array.isArray(x)) return fc.constantFrom<unknown>([], x.concat(x), [x[0] ?? null, null]);
  if (isObject(x)) return fc.constantFrom<unknown>({}, { ...x, "": null });
  return nastyValue;
}

function nest(depth: number, leaf: unknown): unknown {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** Structural mutations of a valid value: drop, replace, add, recurse, wrap. */
export function mutate(example: unknown, depth = 0): fc.Arbitrary<unknown> {
  const options: fc.WeightedArbitrary<unknown>[] = [
    { weight: 3, arbitrary: fc.constant(example) },
    { weight: 2, arbitrary: nastyValue },
    { weight: 1, arbitrary: fc.constant([example]) },
  ];
  if (isObject(example)) {
    const keys = Object.keys(example);
    if (keys.length > 0) {
      const key = fc.constantFrom(...keys);
      options.push({
        weight: 4,
        arbitrary: key.map((k) => {
          const copy = { ...example };
          delete copy[k];
          return copy;
        }),
      });
      options.push({ weight: 5, arbitrary: fc.tuple(key, nastyValue).map(([k, val]) => ({ ...example, [k]: val })) });
      options.push({ weight: 8, arbitrary: key.chain((k) => sameTypeEdge(example[k]).map((val) => ({ ...example, [k]: val }))) });
      if (depth < 3) {
        options.push({
          weight: 4,
          arbitrary: key.chain((k) => mutate(example[k], depth + 1).map((val) => ({ ...example, [k]: val }))),
        });
      }
    }
    options.push({
      weight: 2,
      arbitrary: fc.tuple(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("__proto__", "constructor", "signatures", "auth", "m.relates_to")), nastyValue).map(
        ([k, val]) => ({ ...example, [k]: val }),
      ),
    });
  } else if (Array.isArray(example) && example.length > 0 && depth < 3) {
    options.push({
      weight: 3,
      arbitrary: fc.nat({ max: example.length - 1 }).chain((i) => mutate(example[i], depth + 1).map((val) => example.map((e, j) => (j === i ? val : e)))),
    });
    options.push({ weight: 1, arbitrary: fc.integer({ min: 101, max: 11_000 }).map((n) => Array.from({ length: n }, () => example[0])) });
  }
  return fc.oneof(...options);
}

/** JSON text tricks the strict parser must refuse (or accept) without crashing. */
function rawTextBodies(example: unknown): fc.Arbitrary<BodyChoice> {
  const json = JSON.stringify(example ?? {});
  const firstKey = isObject(example) ? Object.keys(example)[0] : undefined;
  const dup = firstKey !== undefined ? `{${JSON.stringify(firstKey)}:1,${json.slice(1)}` : `{"a":1,"a":2}`;
  return fc.oneof(
    fc.constantFrom<BodyChoice>(
      { kind: "text", text: dup },
      { kind: "text", text: `{"a":1,"a":1}` },
      { kind: "text", text: `{"__proto__":{"x":1},"__proto__":{}}` },
      { kind: "text", text: json.slice(0, Math.max(1, json.length - 1)) },
      { kind: "text", text: "{" },
      { kind: "text", text: "}" },
      { kind: "text", text: "nul" },
      { kind: "text", text: "'a'" },
      { kind: "text", text: "[1,]" },
      { kind: "text", text: `{"a":NaN}` },
      { kind: "text", text: `{"a":Infinity}` },
      { kind: "text", text: `{"a":-Infinity}` },
      { kind: "text", text: `{"a":1e400}` },
      { kind: "text", text: `{"a":-1e400}` },
      { kind: "text", text: `{"a":123456789012345678901234567890}` },
      { kind: "text", text: `{"a":0x10}` },
      { kind: "text", text: `{"a":01}` },
      { kind: "text", text: `{"a":.5}` },
      { kind: "text", text: `{"a":"\\ud800"}` },
      { kind: "text", text: `{"\\ud800":1}` },
      { kind: "text", text: `{"a":"\\u0000"}` },
      { kind: "text", text: `{"a":"b\u0000"}` },
      { kind: "text", text: `{"a":"\\x41"}` },
      { kind: "text", text: `{"a":1} {"b":2}` },
      { kind: "text", text: `{"a":1}garbage` },
      { kind: "text", text: `/*c*/{}` },
      { kind: "text", text: "\ufeff{}" },
      { kind: "text", text: "\u0000" },
      { kind: "text", text: "   \n\t " },
      { kind: "text", text: "null" },
      { kind: "text", text: "true" },
      { kind: "text", text: "0" },
      { kind: "text", text: '"string"' },
      { kind: "text", text: "[]" },
      { kind: "text", text: "a=1&b=2" },
      { kind: "text", text: "--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--" },
    ),
    // invalid UTF-8 inside otherwise fine JSON
    fc
      .tuple(
        fc.constantFrom("ff", "c328", "c0af", "e0808f", "eda080", "f4908080", "fe", "80", "f0"),
        fc.nat({ max: Math.max(0, json.length) }),
      )
      .map(([bad, at]): BodyChoice => {
        const buf = Buffer.from(json, "utf8");
        const i = Math.min(at, buf.length);
        return { kind: "bytes", hex: Buffer.concat([buf.subarray(0, i), Buffer.from(bad, "hex"), buf.subarray(i)]).toString("hex") };
      }),
    fc.constantFrom<BodyChoice>(
      { kind: "bytes", hex: Buffer.from(`{"a":"\u00e9"}`, "latin1").toString("hex") },
      { kind: "bytes", hex: "7b2261223a2200227d" },
      { kind: "bytes", hex: Buffer.from("{}", "utf16le").toString("hex") },
    ),
    fc.integer({ min: 65, max: 300_000 }).map((depth): BodyChoice => ({ kind: "deep", depth, open: "[" })),
    fc.integer({ min: 65, max: 300_000 }).map((depth): BodyChoice => ({ kind: "deep", depth, open: '{"a":' })),
  );
}

/** A body for an endpoint: none, valid, mutated-valid, random JSON, raw text/bytes, oversized. */
export function bodyArb(d: EndpointDescriptor, example: unknown): fc.Arbitrary<BodyChoice> {
  const base = example ?? {};
  const hasBody = d.body !== undefined;
  return fc.oneof(
    { weight: hasBody ? 3 : 1, arbitrary: fc.constant<BodyChoice>({ kind: "json", value: base }) },
    { weight: hasBody ? 12 : 2, arbitrary: mutate(base).map((value): BodyChoice => ({ kind: "json", value })) },
    { weight: 2, arbitrary: nastyValue.map((value): BodyChoice => ({ kind: "json", value })) },
    { weight: 4, arbitrary: rawTextBodies(base) },
    { weight: 1, arbitrary: fc.constant<BodyChoice>({ kind: "none" }) },
    { weight: 1, arbitrary: fc.integer({ min: 1_048_577, max: 3_000_000 }).map((bytes): BodyChoice => ({ kind: "oversized", bytes })) },
  );
}

// ── path, query, headers ─────────────────────────────────────────────────────

/** Path segments that probe decoding, traversal and length limits (inserted raw). */
const RAW_SEGMENTS = [
  "",
  "..",
  ".",
  "%2e%2e",
  "%2E%2E%2F%2E%2E",
  "..%2f..%2f",
  "%2F",
  "%00",
  "a%00b",
  "%",
  "%zz",
  "%c3%28",
  "%ff",
  "%ed%a0%80",
  "%c0%ae%c0%ae",
  "%252e%252e",
  "%0d%0aX-Injected:%20yes",
  "%20",
  "+",
  "%40%3A",
  "%21%3A",
  "!x%3A%5B%3A%3A1%5D%3A8448",
  "%40alice%3Ahs.fuzz.test%00",
  "~",
  "*",
  ";",
  "a;b=c",
  "%E2%80%AE",
];

/** `encodeURIComponent` that also encodes lone surrogates (as their WTF-8 bytes) instead of throwing. */
export function pctEncode(s: string): string {
  let out = "";
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp >= 0xd800 && cp <= 0xdfff) out += `%${(0xe0 | (cp >> 12)).toString(16)}%${(0x80 | ((cp >> 6) & 0x3f)).toString(16)}%${(0x80 | (cp & 0x3f)).toString(16)}`.toUpperCase();
    else out += encodeURIComponent(ch);
  }
  return out;
}

function segmentArb(valid: string | undefined): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: valid !== undefined ? 6 : 0, arbitrary: fc.constant(pctEncode(valid ?? "")) },
    { weight: valid !== undefined ? 1 : 0, arbitrary: fc.constant(valid ?? "") },
    { weight: 3, arbitrary: fc.constantFrom(...RAW_SEGMENTS) },
    { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS).map(pctEncode) },
    { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 30 }).map(pctEncode) },
    { weight: 1, arbitrary: fc.integer({ min: 256, max: 5000 }).map((n) => "a".repeat(n)) },
  );
}

function queryArb(d: EndpointDescriptor, example: Record<string, string> | undefined): fc.Arbitrary<string> {
  const base = example ?? {};
  const keys = Object.keys(base);
  const enc = (o: Record<string, string | string[]>) => {
    const p = new URLSearchParams();
    for (const [k, val] of Object.entries(o)) for (const x of Array.isArray(val) ? val : [val]) p.append(k, x);
    return p.toString();
  };
  const someKey = keys.length > 0 ? fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 8 })) : fc.string({ maxLength: 8 });
  const qValue = fc.oneof(fc.constantFrom(...NASTY_STRINGS), fc.string({ maxLength: 20 }), fc.integer().map(String), fc.integer({ min: 300, max: 9000 }).map((n) => "q".repeat(n)));
  return fc.oneof(
    { weight: d.query ? 3 : 6, arbitrary: fc.constant(enc(base)) },
    { weight: d.query ? 4 : 1, arbitrary: fc.tuple(someKey, qValue).map(([k, val]) => enc({ ...base, [k]: val })) },
    {
      weight: d.query && keys.length > 0 ? 2 : 0,
      arbitrary: keys.length > 0 ? fc.constantFrom(...keys).map((k) => enc(Object.fromEntries(Object.entries(base).filter(([x]) => x !== k)))) : fc.constant(""),
    },
    { weight: d.query && keys.length > 0 ? 1 : 0, arbitrary: keys.length > 0 ? fc.constantFrom(...keys).map((k) => `${enc(base)}&${pctEncode(k)}=${pctEncode(base[k] ?? "")}`) : fc.constant("") },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom("a=%", "a=%zz", "&&&", "=x", "a[b]=c", "a=%00", "a=%ff%fe", "%=%", "a=1&a=2&a=3", "access_token=", "access_token=%00", "__proto__=x", "constructor=1")
        .map((t) => (keys.length ? `${enc(base)}&${t}` : t)),
    },
  );
}

const CONTENT_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "application/json; charset=latin1",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/octet-stream",
  ";;;",
  "application/json, text/html",
  "x".repeat(2000),
];

function authArb(): fc.Arbitrary<AuthChoice> {
  return fc.oneof(
    { weight: 10, arbitrary: fc.constant<AuthChoice>({ kind: "valid" }) },
    { weight: 2, arbitrary: fc.constant<AuthChoice>({ kind: "none" }) },
    { weight: 1, arbitrary: fc.constant<AuthChoice>({ kind: "valid-in-query" }) },
    { weight: 2, arbitrary: fc.constantFrom("suffix", "case", "truncate", "double").map((how): AuthChoice => ({ kind: "valid-mangled", how })) },
    {
      weight: 3,
      arbitrary: fc
        .oneof(
          fc.constantFrom("Bearer", "Bearer ", "Bearer  ", "bearer x", "Basic dXNlcjpwYXNz", "Bearer \u00ff\u00fe", "Bearer a b", "Token abc", "X-Matrix origin=hs.fuzz.test,key=\"ed25519:0\",sig=\"a\"", "X-Matrix origin=localhost:1,key=\"ed25519:0\",sig=\"a\"", "X-Matrix", ","),
          fc.string({ maxLength: 30 }).map((s) => `Bearer ${s.replace(/[\r\n]/g, "")}`),
          fc.integer({ min: 1000, max: 16_000 }).map((n) => `Bearer ${"t".repeat(n)}`),
        )
        .map((value): AuthChoice => ({ kind: "header", value })),
    },
    { weight: 1, arbitrary: fc.constantFrom("", "%00", "x", "a".repeat(3000), "%zz").map((value): AuthChoice => ({ kind: "query", value })) },
  );
}

const EXTRA_HEADERS: Record<string, string>[] = [
  {},
  { "x-forwarded-for": "not-an-ip, ::1, 999.1.1.1" },
  { "content-encoding": "gzip" },
  { "transfer-encoding": "chunked" },
  { origin: "https://evil.example" },
  { accept: "text/html" },
  { "accept-encoding": "br;q=2, *;q=-1" },
  { host: "evil.example:99999" },
  { "x-matrix": "garbage" },
];

const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

function fillPath(template: string, segments: Record<string, string>): string {
  return template.replace(/\{([A-Za-z0-9_]+)\}/g, (_m, name: string) => segments[name] ?? "");
}

/** Every hostile request for one endpoint (all its paths). */
export function caseArb(d: EndpointDescriptor, example: Example, paramPool: Record<string, string>): fc.Arbitrary<FuzzCase> {
  const templates = allPaths(d);
  const names = pathParams(d.path);
  const validOf = (n: string) => example.params?.[n] ?? paramPool[n];
  const hostile = {
    method: fc.oneof({ weight: 12, arbitrary: fc.constant(d.method) }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) }),
    segs: fc.record(Object.fromEntries(names.map((n) => [n, segmentArb(validOf(n))])) as Record<string, fc.Arbitrary<string>>),
    query: queryArb(d, example.query),
    auth: authArb(),
    contentType: fc.oneof({ weight: 8, arbitrary: fc.constant<string | null>("application/json") }, { weight: 3, arbitrary: fc.constantFrom<string | null>(null, ...CONTENT_TYPES) }),
    extraHeaders: fc.oneof({ weight: 8, arbitrary: fc.constant({}) }, { weight: 2, arbitrary: fc.constantFrom(...EXTRA_HEADERS) }),
    body:
      d.method === "GET" || d.method === "DELETE"
        ? fc.oneof({ weight: 8, arbitrary: fc.constant<BodyChoice>({ kind: "none" }) }, { weight: 1, arbitrary: bodyArb(d, example.body) })
        : bodyArb(d, example.body),
  };
  const validBody: BodyChoice = d.body && d.method !== "GET" ? { kind: "json", value: example.body ?? {} } : { kind: "none" };
  const encQuery = new URLSearchParams(example.query ?? {}).toString();
  const valid = {
    method: fc.constant(d.method),
    segs: fc.record(Object.fromEntries(names.map((n) => [n, validOf(n) !== undefined ? fc.constant(pctEncode(validOf(n) ?? "")) : segmentArb(undefined)])) as Record<string, fc.Arbitrary<string>>),
    query: fc.constant(encQuery),
    auth: fc.constant<AuthChoice>({ kind: "valid" }),
    contentType: fc.constant<string | null>("application/json"),
    extraHeaders: fc.constant<Record<string, string>>({}),
    body: fc.constant(validBody),
  };
  type Dim = keyof typeof valid;
  // Mutated-valid: most cases corrupt one dimension and keep the rest correct (so they reach the
  // handler); some corrupt everything at once.
  const focus = fc.oneof(
    { weight: d.body ? 8 : 1, arbitrary: fc.constant<Dim | "all">("body") },
    { weight: names.length > 0 ? 3 : 0, arbitrary: fc.constant<Dim | "all">("segs") },
    { weight: d.query ? 3 : 1, arbitrary: fc.constant<Dim | "all">("query") },
    { weight: 2, arbitrary: fc.constant<Dim | "all">("auth") },
    { weight: 1, arbitrary: fc.constant<Dim | "all">("contentType") },
    { weight: 1, arbitrary: fc.constant<Dim | "all">("extraHeaders") },
    { weight: 1, arbitrary: fc.constant<Dim | "all">("method") },
    { weight: 3, arbitrary: fc.constant<Dim | "all">("all") },
  );
  const pick = <K extends Dim>(f: Dim | "all", k: K) => (f === "all" || f === k ? hostile[k] : valid[k]) as (typeof hostile)[K];
  return fc
    .tuple(fc.constantFrom(...templates), focus)
    .chain(([template, f]) =>
      fc
        .record({
          method: pick(f, "method"),
          segs: pick(f, "segs"),
          query: pick(f, "query"),
          auth: pick(f, "auth"),
          contentType: pick(f, "contentType"),
          extraHeaders: pick(f, "extraHeaders"),
          body: pick(f, "body"),
        })
        .map(
          (r): FuzzCase => ({
            target: d.id,
            method: r.method,
            template,
            path: fillPath(template, r.segs),
            query: r.query,
            auth: r.auth,
            contentType: r.contentType,
            extraHeaders: r.extraHeaders,
            body: r.body,
          }),
        ),
    );
}

/** Requests to paths no descriptor declares: 404/405 `M_UNRECOGNIZED`, never a crash. */
export function unknownRouteArb(prefixes: string[]): fc.Arbitrary<FuzzCase> {
  return fc
    .record({
      prefix: fc.constantFrom(...prefixes),
      rest: fc.array(fc.oneof(fc.constantFrom(...RAW_SEGMENTS), fc.string({ maxLength: 10 }).map(pctEncode)), { maxLength: 4 }),
      method: fc.constantFrom(...METHODS),
      body: fc.oneof(fc.constant<BodyChoice>({ kind: "none" }), nastyValue.map((value): BodyChoice => ({ kind: "json", value }))),
    })
    .map((r) => ({
      target: "unknown-route",
      method: r.method,
      template: `${r.prefix}/…`,
      path: `/${[r.prefix, ...r.rest].join("/").replace(/^\/+/, "")}`,
      query: "",
      auth: { kind: "valid" } as AuthChoice,
      contentType: "application/json",
      extraHeaders: {},
      body: r.method === "GET" || r.method === "HEAD" ? { kind: "none" } : r.body,
    }));
}
