/**
 * The values a mail is made of, computed once from the caller's variables: links, the sign
 * URL, Sydent's truncated names and bracketed extras, the subject. Both the built-in templates
 * and an operator's Sydent templates render from these (Sydent's variable names).
 */
import { isEmailSubmitTokenGet, isSignEd25519 } from "@beckon/protocol";
import { headerSafe, isValidMailAddress, textSafe, truncateDisplayName, truncateRoomName } from "./text.js";

export type MailTemplateName = "validation" | "invite" | "validation-msisdn";

/** Thrown when a mail cannot be rendered (a missing variable, a bad address, a broken template). */
export class MailTemplateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MailTemplateError";
  }
}

/** `web_client_location` when neither the request nor the config names one (Sydent's default). */
export const DEFAULT_WEB_CLIENT_LOCATION = "https://app.element.io";

/**
 * Variables of the validation mail. `public_base_url` is the identity server's public base URL
 * (config `public_base_url`); the link is built from it.
 */
export interface ValidationMailVars {
  /** The IS's public base URL (alias `is_base_url`); needed unless `link` is given. */
  public_base_url?: string;
  /** The submitToken link, when the caller builds it (http(s) only; else built from the base URL). */
  link?: string;
  token: string;
  client_secret: string;
  sid: string | number;
  /** The requester's address, shown by Sydent templates as `ipaddress`. */
  ipaddress?: string;
}

/**
 * Variables of the invite mail: the store-invite request fields (Sydent passes every string
 * field of the request to the template) plus the token, the ephemeral private key (unpadded
 * base64, only ever in the mail) and the identity server's public base URL.
 */
export interface InviteMailVars {
  /** The IS's public base URL (alias `is_base_url`); needed unless `sign_url` is given. */
  public_base_url?: string;
  /** The sign URL / join link when the caller builds them (http(s) only; else built here). */
  sign_url?: string;
  join_link?: string;
  /** The web client (config `web_client_location`); `org.matrix.web_client_location` wins. */
  web_client_location?: string;
  room_id: string;
  sender: string;
  token: string;
  ephemeral_private_key: string;
  sender_display_name?: string;
  sender_avatar_url?: string;
  room_name?: string;
  room_alias?: string;
  room_avatar_url?: string;
  room_join_rules?: string;
  room_type?: string;
  /** Non-spec field Synapse sends; overrides the configured web client. */
  "org.matrix.web_client_location"?: string;
  /** False for unauthenticated (v1-style) calls: then `sender` is not shown as verified. Default true. */
  verified_sender?: boolean;
}

export interface MsisdnMailVars {
  token: string;
}

export interface ContextOptions {
  /** Config `web_client_location` (default https://app.element.io). */
  webClientLocation?: string;
  /** Sydent's `email.invite.subject` (`%(sender_display_name)s has invited you to chat`). */
  inviteSubject?: string;
  /** Sydent's `email.invite.subject_space`. */
  inviteSubjectSpace?: string;
  /** Subject of the validation mail. */
  validationSubject?: string;
}

/** Every value a template may use, by Sydent's names, all strings and all single-line. */
export type TemplateContext = Record<string, string>;

export interface MailContext {
  subject: string;
  /** Template variables (Sydent names plus ours: `sign_url`, `join_link`, `link`, `mxid`…). */
  vars: TemplateContext;
}

function str(vars: Record<string, unknown>, key: string): string | undefined {
  const v = vars[key];
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

function required(vars: Record<string, unknown>, key: string): string {
  const v = str(vars, key);
  if (v === undefined || v === "") throw new MailTemplateError(`mail variable "${key}" is missing`);
  return textSafe(v);
}

function httpBase(value: string, what: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new MailTemplateError(`${what} is not a URL`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw new MailTemplateError(`${what} must be http(s)`);
  return value.replace(/\/+$/, "");
}

/** The IS base URL: `public_base_url` (or its alias `is_base_url`); undefined when neither is set. */
function baseUrl(vars: Record<string, unknown>): string | undefined {
  const v = str(vars, "public_base_url") || str(vars, "is_base_url");
  return v ? httpBase(textSafe(v), "public_base_url") : undefined;
}

/** A link the caller built itself (`link`, `sign_url`, `join_link`), used as given when it is http(s). */
function givenLink(vars: Record<string, unknown>, key: string): string | undefined {
  const v = str(vars, key);
  return v ? webLocation(v) && textSafe(v) : undefined;
}

function needBase(base: string | undefined, what: string): string {
  if (base === undefined) throw new MailTemplateError(`mail variable "public_base_url" is missing (needed for the ${what})`);
  return base;
}

/** An http(s) URL, or undefined (anything else, e.g. `javascript:`, is ignored). */
function webLocation(value: string | undefined): string | undefined {
  if (value === undefined || value === "") return undefined;
  try {
    const u = new URL(value);
    if (u.protocol !== "https:" && u.protocol !== "http:") return undefined;
  } catch {
    return undefined;
  }
  return textSafe(value).replace(/\/+$/, "");
}

/** Python `%(name)s` formatting as Sydent's config subjects use it (`%%` is a literal %). */
export function pythonFormat(format: string, vars: Record<string, string>): string {
  return format.replace(/%\(([^)]+)\)s|%%/g, (whole, name: string | undefined) => {
    if (name === undefined) return "%";
    const v = vars[name];
    if (v === undefined) throw new MailTemplateError(`template refers to unknown variable "${name}"`);
    return v;
  });
}

/** Every string/number variable, made single-line (Sydent exposes all request fields). */
function passThrough(vars: Record<string, unknown>): TemplateContext {
  const out: TemplateContext = {};
  for (const key of Object.keys(vars)) {
    const v = str(vars, key);
    if (v !== undefined) out[key] = textSafe(v);
  }
  return out;
}

function recipient(vars: Record<string, unknown>): string {
  const to = str(vars, "to");
  if (to === undefined || !isValidMailAddress(to)) throw new MailTemplateError("mail recipient is missing or not a single plain address");
  return to;
}

/** The sign URL of an invite: `<IS base>/_matrix/identity/v2/sign-ed25519?token=…&private_key=…`. */
export function signUrl(publicBaseUrl: string, token: string, privateKey: string): string {
  return `${httpBase(publicBaseUrl, "public_base_url")}${isSignEd25519.path}?token=${encodeURIComponent(token)}&private_key=${encodeURIComponent(privateKey)}`;
}

/** The validation link: `<IS base>/_matrix/identity/v2/validate/email/submitToken?token=…&client_secret=…&sid=…`. */
export function validationLink(publicBaseUrl: string, token: string, clientSecret: string, sid: string): string {
  return (
    `${httpBase(publicBaseUrl, "public_base_url")}${isEmailSubmitTokenGet.path}` +
    `?token=${encodeURIComponent(token)}&client_secret=${encodeURIComponent(clientSecret)}&sid=${encodeURIComponent(sid)}`
  );
}

export function validationContext(raw: Record<string, unknown>, opts: ContextOptions = {}): MailContext {
  const to = recipient(raw);
  const base = baseUrl(raw);
  const token = required(raw, "token");
  const clientSecret = required(raw, "client_secret");
  const sid = required(raw, "sid");
  const link = givenLink(raw, "link") ?? validationLink(needBase(base, "validation link"), token, clientSecret, sid);
  const vars: TemplateContext = {
    ...passThrough(raw),
    to,
    token,
    client_secret: clientSecret,
    sid,
    ipaddress: str(raw, "ipaddress") ? textSafe(str(raw, "ipaddress") ?? "") : "an unknown location",
    link,
  };
  const subject = headerSafe(opts.validationSubject ?? "Confirm your email address for Matrix");
  vars.subject_header_value = subject;
  return { subject, vars };
}

export function msisdnContext(raw: Record<string, unknown>): MailContext {
  const token = required(raw, "token");
  const vars: TemplateContext = { ...passThrough(raw), token };
  if (str(raw, "to") !== undefined) vars.to = recipient(raw);
  const subject = "Your verification code";
  vars.subject_header_value = subject;
  return { subject, vars };
}

/**
 * The invite's values, as Sydent's store-invite servlet derives them: names truncated
 * (display name > 20 → 19 + "…", room name > 30 → 25 + "…"), `bracketed_room_name`,
 * `bracketed_verified_sender`, `web_client_location`, the subject. Ours in addition:
 * `sign_url` (on our own IS, v2 path), `join_link`, `mxid` and `inviter` (display name with the MXID, never truncated).
 */
export function inviteContext(raw: Record<string, unknown>, opts: ContextOptions = {}): MailContext {
  const to = recipient(raw);
  const base = baseUrl(raw);
  const roomId = required(raw, "room_id");
  const sender = required(raw, "sender");
  const token = required(raw, "token");
  const privateKey = required(raw, "ephemeral_private_key");
  const opt = (k: string) => textSafe(str(raw, k) ?? "");

  // Synapse sends the mxid when the inviter has no display name; so do we when it is missing.
  const fullDisplayName = opt("sender_display_name").trim() || sender;
  const senderDisplayName = truncateDisplayName(fullDisplayName);
  const roomName = opt("room_name").trim() === "" ? "" : truncateRoomName(opt("room_name"));
  const roomType = opt("room_type");
  const verified = raw.verified_sender !== false;
  const webClient =
    webLocation(str(raw, "org.matrix.web_client_location")) ??
    webLocation(str(raw, "web_client_location")) ??
    webLocation(opts.webClientLocation) ??
    DEFAULT_WEB_CLIENT_LOCATION;
  const sign = givenLink(raw, "sign_url") ?? signUrl(needBase(base, "sign URL"), token, privateKey);
  const q = encodeURIComponent;
  const joinLink =
    givenLink(raw, "join_link") ??
    `${webClient}/#/room/${q(roomId)}?email=${q(to)}&signurl=${q(sign)}&room_name=${q(roomName)}` +
    `&room_avatar_url=${q(opt("room_avatar_url"))}&inviter_name=${q(senderDisplayName)}&room_type=${q(roomType)}`;

  const vars: TemplateContext = {
    ...passThrough(raw),
    // Sydent's "optional to the API, required by the template" substitutions default to "".
    guest_user_id: "",
    guest_access_token: "",
    room_avatar_url: opt("room_avatar_url"),
    sender_avatar_url: opt("sender_avatar_url"),
    room_alias: opt("room_alias"),
    room_join_rules: opt("room_join_rules"),
    room_type: roomType,
    to,
    room_id: roomId,
    sender,
    mxid: sender,
    token,
    ephemeral_private_key: privateKey,
    sender_display_name: senderDisplayName,
    room_name: roomName,
    bracketed_room_name: roomName === "" ? "" : `(${roomName}) `,
    bracketed_verified_sender: verified ? `(${sender}) ` : "",
    web_client_location: webClient,
    sign_url: sign,
    join_link: joinLink,
    // Who invited, always with the MXID (CVE-2021-29432): "Alice (@alice:example.org)".
    inviter: fullDisplayName === sender ? sender : `${senderDisplayName} (${sender})`,
  };
  const format =
    roomType === "m.space"
      ? (opts.inviteSubjectSpace ?? "%(sender_display_name)s has invited you to a space")
      : (opts.inviteSubject ?? "%(sender_display_name)s has invited you to chat");
  const subject = headerSafe(pythonFormat(format, vars));
  vars.subject_header_value = subject;
  return { subject, vars };
}

export function mailContext(template: MailTemplateName, vars: Record<string, unknown>, opts: ContextOptions = {}): MailContext {
  switch (template) {
    case "validation":
      return validationContext(vars, opts);
    case "invite":
      return inviteContext(vars, opts);
    case "validation-msisdn":
      return msisdnContext(vars);
    default:
      throw new MailTemplateError(`unknown mail template "${String(template)}"`);
  }
}
