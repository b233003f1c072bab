/**
 * Defects the fuzzer found that are not fixed yet (docs/RELIABILITY.md, "Defects found").
 * A violation matching one is counted, not failed, and its minimal request is replayed by a
 * `todo` test (known-defects.test.ts) until the owner fixes it; then the entry is deleted
 * (fixed so far: DEF-5 in 8f3d047, DEF-7 in 64e3c0a — see docs/RELIABILITY.md).
 */
import type { InjectOptions } from "fastify";
import type { FuzzCase } from "./gen.js";
import type { KnownDefect } from "./runner.js";

const PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype);

/** The event type of a send/state path, decoded (undefined for other paths). */
function eventTypeOf(c: FuzzCase): string | undefined {
  const m = /\/rooms\/[^/]*\/(?:send|state)\/([^/?]*)/.exec(c.path);
  if (!m) return undefined;
  try {
    return decodeURIComponent(m[1] ?? "");
  } catch {
    return m[1];
  }
}

/** True when a JSON value holds a number canonical JSON refuses (float, or an integer outside ±(2^53-1)). */
export function hasNonCanonicalNumber(x: unknown, depth = 0): boolean {
  if (depth > 200) return false;
  if (typeof x === "number") return !Number.isSafeInteger(x) && !Object.is(x, -0) ? true : false;
  if (Array.isArray(x)) return x.some((e) => hasNonCanonicalNumber(e, depth + 1));
  if (typeof x === "object" && x !== null) return Object.values(x).some((e) => hasNonCanonicalNumber(e, depth + 1));
  return false;
}

function bodyText(c: FuzzCase): string {
  if (c.body.kind === "json") return JSON.stringify(c.body.value) ?? "";
  if (c.body.kind === "text") return c.body.text;
  if (c.body.kind === "bytes") return Buffer.from(c.body.hex, "hex").toString("utf8");
  return "";
}

function bodyHasNonCanonicalNumber(c: FuzzCase): boolean {
  if (c.body.kind === "json") return hasNonCanonicalNumber(c.body.value);
  if (c.body.kind === "text") return /\d\.\d|\d[eE][+-]?\d|\d{16,}/.test(c.body.text);
  return false;
}

export interface DocumentedDefect extends KnownDefect {
  /** Which server(s) and whose code. */
  owner: string;
  summary: string;
  /** The minimal reproducing request. */
  repro: InjectOptions;
  /** True when the answer to `repro` keeps every invariant (i.e. the defect is fixed). */
  fixed(res: { status: number; body: string; contentType: string }): boolean;
}

const matrixErrorBody = (res: { status: number; body: string; contentType: string }): boolean => {
  try {
    const b = JSON.parse(res.body) as Record<string, unknown>;
    return res.status < 500 && typeof b.errcode === "string" && typeof b.error === "string" && /application\/json/.test(res.contentType);
  } catch {
    return false;
  }
};



export const KNOWN_DEFECTS: DocumentedDefect[] = [
  {
    id: "DEF-1",
    owner: "server-kit (createHttpApp), both servers",
    summary: "a malformed percent-encoding in the path or query (e.g. `%zz`, a lone `%`) is answered by Fastify's own 400 {error, code: FST_ERR_BAD_URL, message, statusCode} — no errcode",
    repro: { method: "GET", url: "/_matrix/client/v3/profile/%zz/avatar_url" },
    matches: (_c, v) => v.includes("FST_ERR_BAD_URL"),
    fixed: matrixErrorBody,
  },
  {
    id: "DEF-2",
    owner: "server-kit (createHttpApp), both servers",
    summary: "a path parameter longer than the router's maxParamLength (1000) is answered 414 {error, code: FST_ERR_MAX_PARAM_LENGTH, message, statusCode} — no errcode",
    repro: { method: "GET", url: `/_matrix/client/v3/profile/${"a".repeat(1001)}` },
    matches: (_c, v) => v.includes("FST_ERR_MAX_PARAM_LENGTH"),
    fixed: matrixErrorBody,
  },
  {
    id: "DEF-3",
    owner: "protocol (events/redaction.ts), seen through the homeserver",
    summary:
      "an event type named like an Object.prototype property (`constructor`, `toString`, `__proto__`…) in `send` or `state` is a 500: the redaction algorithm looks the type up in a plain object and gets a function (TypeError: keys is not iterable)",
    repro: { method: "PUT", url: "/_matrix/client/v3/rooms/{roomId}/send/constructor/txn1", payload: "{}" },
    matches: (c, v) => v === "status 500" && PROTO_NAMES.includes(eventTypeOf(c) ?? ""),
    fixed: matrixErrorBody,
  },
  {
    id: "DEF-4",
    owner: "homeserver (event building from client content)",
    summary:
      "a float or an integer outside ±(2^53−1) anywhere in event content (send, state, extra keys of a join/leave/invite body that end up in the member event) is a 500 CanonicalJsonError instead of 400 M_BAD_JSON",
    repro: { method: "PUT", url: "/_matrix/client/v3/rooms/{roomId}/send/m.room.message/txn2", payload: '{"msgtype":"m.text","body":"x","n":1.5}' },
    matches: (c, v) => v === "status 500" && bodyHasNonCanonicalNumber(c),
    fixed: matrixErrorBody,
  },
  {
    id: "DEF-6",
    owner: "homeserver (identity-server client)",
    summary:
      "an `id_access_token` with a character that cannot go in an HTTP header (non-Latin-1 such as `푼` or U+FFFD, a control character, CR/LF) makes the outbound call throw before sending: 502 \"Could not reach the identity server (network error)\" although the IS is up — should be 400 (M_INVALID_PARAM) or the IS's 401",
    repro: {
      method: "POST",
      url: "/_matrix/client/v3/rooms/{roomId}/invite",
      payload: '{"id_server":"is.fuzz.test","id_access_token":"\\ud478","medium":"email","address":"carol@example.org"}',
    },
    matches: (c, v) => /^status 50[24] although the peer is up/.test(v) && /"id_access_token":"(?:[^"\\]|\\.)*(?:[^\x20-\x7e"\\]|\\[^"\\/])/.test(bodyText(c)),
    fixed: (res) => res.status < 500 && matrixErrorBody(res),
  },
];
