/**
 * X-Matrix request authentication between servers
 * (https://spec.matrix.org/v1.18/server-server-api/#request-authentication), and the variant
 * homeservers use to sign `3pid/unbind` requests to identity servers, which names the
 * identity server under `destination_is` in the signed object (protocol-notes §6).
 *
 * @example
 * const authorization = await signXMatrixRequest(
 *   { method: "PUT", uri: "/_matrix/federation/v1/send/1", origin: "a.example", destination: "b.example", content: { pdus: [] } },
 *   "ed25519:0", seed);
 * // 'X-Matrix origin="a.example",destination="b.example",key="ed25519:0",sig="…"'
 * const auth = await verifyXMatrixRequest({ method: "PUT", uri: "/_matrix/federation/v1/send/1", content: { pdus: [] },
 *   authorization, ourNames: ["b.example"], getKey: async (origin, keyId) => lookUpKey(origin, keyId) });
 * auth.origin; // "a.example"
 */
import { getDefaultCryptoProvider, type CryptoProvider } from "./crypto.js";
import { MatrixError } from "./errors.js";
import { isValidServerName } from "./identifiers.js";
import { getSignature, signJson, verifyJsonSignature } from "./signing.js";

/** The parameters of an `Authorization: X-Matrix …` header. */
export interface XMatrixAuth {
  origin: string;
  /** Absent in headers from servers older than spec v1.3. */
  destination?: string;
  /** The key id, e.g. `ed25519:abc`. */
  key: string;
  /** Unpadded base64 signature. */
  sig: string;
}

/** What a request's signature covers. `content` is the parsed JSON body, absent when there is none. */
export interface XMatrixRequest {
  method: string;
  /** Path and query exactly as sent, e.g. `/_matrix/federation/v1/3pid/onbind?x=1`. */
  uri: string;
  origin: string;
  destination: string;
  content?: unknown;
}

/** The path of the identity server's unbind endpoint (v2). */
export const IDENTITY_UNBIND_URI = "/_matrix/identity/v2/3pid/unbind";

function unauthorized(message: string): MatrixError {
  return new MatrixError("M_UNAUTHORIZED", message, 401);
}

/** The object signed for a server-to-server request: `{method, uri, origin, destination, content?}`. */
export function xMatrixSignedObject(req: XMatrixRequest): Record<string, unknown> {
  const out: Record<string, unknown> = { method: req.method, uri: req.uri, origin: req.origin, destination: req.destination };
  if (req.content !== undefined) out.content = req.content;
  return out;
}

/** A homeserver → identity server unbind request (Synapse's form). */
export interface IdentityUnbindRequest {
  /** The homeserver signing the request. */
  origin: string;
  /** The identity server as the homeserver names it (`id_server`). */
  idServer: string;
  content: unknown;
  /** Default {@link IDENTITY_UNBIND_URI}. */
  uri?: string;
  /** Default `POST`. */
  method?: string;
}

/** The object signed for an HS → IS unbind: `{method, uri, origin, destination_is, content}` (note `destination_is`). */
export function identityUnbindSignedObject(req: IdentityUnbindRequest): Record<string, unknown> {
  return { method: req.method ?? "POST", uri: req.uri ?? IDENTITY_UNBIND_URI, origin: req.origin, destination_is: req.idServer, content: req.content };
}

function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => "\\" + c)}"`;
}

/**
 * Formats `X-Matrix origin="…",destination="…",key="…",sig="…"` (values quoted, `"` and `\` escaped).
 */
export function formatXMatrixHeader(auth: XMatrixAuth): string {
  const parts = [`origin=${quote(auth.origin)}`];
  if (auth.destination !== undefined) parts.push(`destination=${quote(auth.destination)}`);
  parts.push(`key=${quote(auth.key)}`, `sig=${quote(auth.sig)}`);
  return `X-Matrix ${parts.join(",")}`;
}

/**
 * Parses an `X-Matrix` Authorization header, tolerantly as the spec asks: the scheme and
 * parameter names are case-insensitive, parameters come in any order, values may be quoted
 * (with backslash escapes) or bare (colons allowed), whitespace around `,` and `=` is ignored,
 * and `signature` is accepted for `sig`. Unknown parameters are ignored; a repeated one, or a
 * missing `origin`, `key` or `sig`, is an error.
 *
 * @throws MatrixError 401 `M_UNAUTHORIZED`.
 */
export function parseXMatrixHeader(header: string): XMatrixAuth {
  const scheme = /^\s*X-Matrix\s+/i.exec(header);
  if (!scheme) throw unauthorized("Authorization is not X-Matrix");
  const s = header;
  let i = scheme[0].length;
  const params = new Map<string, string>();
  const skipWs = () => {
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  };
  for (;;) {
    skipWs();
    const nameStart = i;
    while (i < s.length && /[A-Za-z0-9_-]/.test(s[i]!)) i++;
    const name = s.slice(nameStart, i).toLowerCase();
    if (name === "") throw unauthorized("Malformed X-Matrix header: expected a parameter name");
    skipWs();
    if (s[i] !== "=") throw unauthorized(`Malformed X-Matrix header: expected = after ${name}`);
    i++;
    skipWs();
    let value = "";
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= s.length) throw unauthorized("Malformed X-Matrix header: unterminated quoted value");
        const c = s[i]!;
        if (c === '"') {
          i++;
          break;
        }
        if (c === "\\") {
          if (i + 1 >= s.length) throw unauthorized("Malformed X-Matrix header: dangling escape");
          value += s[i + 1];
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
    } else {
      const start = i;
      while (i < s.length && s[i] !== ",") i++;
      value = s.slice(start, i).trim();
      if (/[\s"]/.test(value)) throw unauthorized("Malformed X-Matrix header: invalid bare value");
    }
    const key = name === "signature" ? "sig" : name;
    if (params.has(key)) throw unauthorized(`Malformed X-Matrix header: repeated ${key}`);
    params.set(key, value);
    skipWs();
    if (i >= s.length) break;
    if (s[i] !== ",") throw unauthorized("Malformed X-Matrix header: expected ,");
    i++;
  }
  const origin = params.get("origin");
  const key = params.get("key");
  const sig = params.get("sig");
  if (!origin || !key || !sig) throw unauthorized("X-Matrix header lacks origin, key or sig");
  const out: XMatrixAuth = { origin, key, sig };
  const destination = params.get("destination");
  if (destination !== undefined) out.destination = destination;
  return out;
}

/**
 * Signs a server-to-server request; returns the `Authorization` header value.
 * `seed` is the server's 32-byte ed25519 seed (raw or base64).
 */
export async function signXMatrixRequest(
  req: XMatrixRequest,
  keyId: string,
  seed: Uint8Array | string,
  provider: CryptoProvider = getDefaultCryptoProvider(),
): Promise<string> {
  const signed = await signJson(xMatrixSignedObject(req), req.origin, keyId, seed, provider);
  const sig = getSignature(signed, req.origin, keyId)!;
  return formatXMatrixHeader({ origin: req.origin, destination: req.destination, key: keyId, sig });
}

/**
 * Signs an HS → IS `3pid/unbind` request the way Synapse does: `destination_is` in the signed
 * object, `destination` in the header; returns the `Authorization` header value.
 */
export async function signIdentityUnbindRequest(
  req: IdentityUnbindRequest,
  keyId: string,
  seed: Uint8Array | string,
  provider: CryptoProvider = getDefaultCryptoProvider(),
): Promise<string> {
  const signed = await signJson(identityUnbindSignedObject(req), req.origin, keyId, seed, provider);
  const sig = getSignature(signed, req.origin, keyId)!;
  return formatXMatrixHeader({ origin: req.origin, destination: req.idServer, key: keyId, sig });
}

/** Looks up a verify key of `origin` (e.g. from its `/_matrix/key/v2/server`); undefined when unknown. */
export type ServerKeyLookup = (origin: string, keyId: string) => Promise<Uint8Array | string | undefined>;

export interface VerifyXMatrixOptions {
  method: string;
  uri: string;
  /** The parsed JSON body; absent when the request has none. */
  content?: unknown;
  /** The `Authorization` header value. */
  authorization: string | undefined;
  /**
   * The names this server answers to (DECISIONS.md: the IS answers to `localhost:P` and
   * `127.0.0.1:P`). A header `destination` outside this list is refused.
   */
  ourNames: readonly string[];
  getKey: ServerKeyLookup;
  /** `destination` (server-server) or `destination_is` (the HS → IS unbind form). Default `destination`. */
  variant?: "destination" | "destination_is";
  provider?: CryptoProvider;
}

/**
 * Verifies an X-Matrix signed request; resolves to the parsed header (use `.origin`).
 * When the header names no destination, each of `ourNames` is tried.
 *
 * @throws MatrixError 401 `M_UNAUTHORIZED` for a missing or malformed header, a foreign
 * destination, an unknown key, or a bad signature. Errors of `getKey` propagate.
 */
export async function verifyXMatrixRequest(opts: VerifyXMatrixOptions): Promise<XMatrixAuth> {
  if (opts.authorization === undefined || opts.authorization === "") throw unauthorized("Missing X-Matrix authorization");
  const auth = parseXMatrixHeader(opts.authorization);
  if (!isValidServerName(auth.origin)) throw unauthorized("X-Matrix origin is not a server name");
  if (!auth.key.startsWith("ed25519:")) throw unauthorized("Unsupported X-Matrix key algorithm");
  let candidates: readonly string[];
  if (auth.destination !== undefined) {
    if (!opts.ourNames.includes(auth.destination)) throw unauthorized("X-Matrix destination is not this server");
    candidates = [auth.destination];
  } else {
    candidates = opts.ourNames;
  }
  const publicKey = await opts.getKey(auth.origin, auth.key);
  if (publicKey === undefined) throw unauthorized("Unknown X-Matrix signing key");
  const provider = opts.provider ?? getDefaultCryptoProvider();
  for (const name of candidates) {
    const obj =
      opts.variant === "destination_is"
        ? identityUnbindSignedObject({ method: opts.method, uri: opts.uri, origin: auth.origin, idServer: name, content: opts.content })
        : xMatrixSignedObject({ method: opts.method, uri: opts.uri, origin: auth.origin, destination: name, content: opts.content });
    const signed = { ...obj, signatures: { [auth.origin]: { [auth.key]: auth.sig } } };
    if (await verifyJsonSignature(signed, auth.origin, auth.key, publicKey, provider)) return auth;
  }
  throw unauthorized("Invalid X-Matrix signature");
}
