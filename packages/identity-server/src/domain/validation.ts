/**
 * 3PID validation sessions (https://spec.matrix.org/v1.18/identity-service-api/#email-associations):
 * one session per (medium, address, client_secret); a repeated `send_attempt` re-uses it and
 * sends nothing; sessions expire `sessionLifetimeMs` after their last change. Mail goes through
 * the durable outbox in the same transaction as the session.
 */
import { MatrixError } from "@beckon/protocol";
import { ALPHABET_DIGITS, randomString, type DomainContext } from "./context.js";
import { canonicalEmail, isValidEmail, normaliseMsisdn } from "./threepid.js";
import type { Stores, ValidationSession } from "../storage/index.js";

/** `next_link` we will redirect to: http(s) only (Sydent drops `file:///`). */
export function safeNextLink(link: string | undefined): string | null {
  if (link === undefined || link === "") return null;
  try {
    const u = new URL(link);
    return u.protocol === "http:" || u.protocol === "https:" ? link : null;
  } catch {
    return null;
  }
}

interface StartArgs {
  medium: "email" | "msisdn";
  address: string;
  clientSecret: string;
  sendAttempt: number;
  nextLink: string | null;
  tokenLength: number;
  tokenAlphabet?: string;
  /** Called inside the transaction for a new attempt (queue the mail). */
  onSend(s: Stores, session: ValidationSession): Promise<void>;
}

async function startSession(ctx: DomainContext, a: StartArgs): Promise<{ session: ValidationSession; sent: boolean }> {
  const now = ctx.clock.now();
  return ctx.transact(async (s) => {
    let session = await s.sessions.find(a.medium, a.address, a.clientSecret);
    if (session && now - session.mtime > ctx.settings.sessionLifetimeMs) {
      await s.sessions.purgeOlderThan(now - ctx.settings.sessionLifetimeMs);
      session = undefined;
    }
    if (session) {
      if (a.sendAttempt <= session.sendAttempt) return { session, sent: false };
      await s.sessions.touch(session.sid, a.sendAttempt, a.nextLink ?? session.nextLink, now);
      session = { ...session, sendAttempt: a.sendAttempt, nextLink: a.nextLink ?? session.nextLink, mtime: now };
      await a.onSend(s, session);
      return { session, sent: true };
    }
    const fresh: ValidationSession = {
      sid: randomString(ctx, 24),
      medium: a.medium,
      address: a.address,
      clientSecret: a.clientSecret,
      token: randomString(ctx, a.tokenLength, a.tokenAlphabet),
      sendAttempt: a.sendAttempt,
      nextLink: a.nextLink,
      validatedTs: null,
      createdTs: now,
      mtime: now,
    };
    if (!(await s.sessions.insert(fresh))) {
      // A concurrent request created it: answer with that one, sending nothing more.
      const other = await s.sessions.find(a.medium, a.address, a.clientSecret);
      if (!other) throw new MatrixError("M_UNKNOWN", "Session conflict", 500);
      return { session: other, sent: false };
    }
    await a.onSend(s, fresh);
    return { session: fresh, sent: true };
  });
}

export function validationLink(ctx: DomainContext, session: ValidationSession): string {
  const q = new URLSearchParams({ token: session.token, client_secret: session.clientSecret, sid: session.sid });
  return `${ctx.settings.publicBaseUrl}/_matrix/identity/v2/validate/email/submitToken?${q.toString()}`;
}

/** `POST validate/email/requestToken` → `{sid}`. */
export async function requestEmailToken(
  ctx: DomainContext,
  req: { client_secret: string; email: string; send_attempt: number; next_link?: string },
  clientIp: string,
): Promise<{ sid: string }> {
  ctx.limits.check("requestToken.ip", clientIp);
  const address = canonicalEmail(req.email);
  if (!isValidEmail(address)) throw new MatrixError("M_INVALID_EMAIL", "Invalid email address", 400);
  const { session, sent } = await startSession(ctx, {
    medium: "email",
    address,
    clientSecret: req.client_secret,
    sendAttempt: req.send_attempt,
    nextLink: safeNextLink(req.next_link),
    tokenLength: 32,
    onSend: async (s, sess) => {
      ctx.limits.check("requestToken.address", address);
      await ctx.mail.enqueue(
        s.db as never,
        {
          to: address,
          kind: "validation",
          template: "validation",
          vars: {
            to: address,
            token: sess.token,
            client_secret: sess.clientSecret,
            sid: sess.sid,
            link: validationLink(ctx, sess),
            ipaddress: clientIp,
            next_link: sess.nextLink ?? "",
          },
          dedupeKey: `validation:${sess.sid}:${sess.sendAttempt}`,
        },
        ctx.clock.now(),
      );
    },
  });
  if (sent) ctx.mail.wake();
  return { sid: session.sid };
}

/** `POST validate/msisdn/requestToken` → `{sid, msisdn, intl_fmt}`; the SMS goes through the SmsSender. */
export async function requestMsisdnToken(
  ctx: DomainContext,
  req: { client_secret: string; country: string; phone_number: string; send_attempt: number; next_link?: string },
  clientIp: string,
): Promise<{ sid: string; msisdn: string; intl_fmt: string }> {
  ctx.limits.check("requestToken.ip", clientIp);
  const msisdn = normaliseMsisdn(req.country, req.phone_number);
  if (!msisdn) throw new MatrixError("M_INVALID_ADDRESS", "Invalid phone number", 400);
  let toSend: ValidationSession | undefined;
  const { session } = await startSession(ctx, {
    medium: "msisdn",
    address: msisdn,
    clientSecret: req.client_secret,
    sendAttempt: req.send_attempt,
    nextLink: safeNextLink(req.next_link),
    tokenLength: 6,
    tokenAlphabet: ALPHABET_DIGITS,
    onSend: async (_s, sess) => {
      ctx.limits.check("requestToken.address", msisdn);
      toSend = sess;
    },
  });
  if (toSend) {
    try {
      await ctx.sms.send(msisdn, `Your Matrix verification code is ${toSend.token}`);
    } catch (e) {
      ctx.logger.warn({ err: e instanceof Error ? e.message : String(e) }, "SMS send failed");
      throw new MatrixError("M_SEND_ERROR", "Could not send the SMS", 500);
    }
  }
  return { sid: session.sid, msisdn, intl_fmt: `+${msisdn}` };
}

/**
 * `submitToken` (POST and the mail link's GET). Errors (DECISIONS, spec v1.18): unknown session
 * or wrong client secret → 400 `M_INVALID_PARAM`; expired → 400 `M_SESSION_EXPIRED`; wrong
 * token → 400 `M_TOKEN_INCORRECT`. Returns the session (its `next_link` for the GET redirect).
 */
export async function submitToken(ctx: DomainContext, req: { sid: string; client_secret: string; token: string }, medium?: string): Promise<ValidationSession> {
  const session = await ctx.stores.sessions.get(req.sid);
  if (!session || session.clientSecret !== req.client_secret || (medium !== undefined && session.medium !== medium)) {
    throw new MatrixError("M_INVALID_PARAM", "No session with that sid and client secret", 400);
  }
  const now = ctx.clock.now();
  if (now - session.mtime > ctx.settings.sessionLifetimeMs) throw new MatrixError("M_SESSION_EXPIRED", "This validation session has expired", 400);
  if (session.token !== req.token.trim()) throw new MatrixError("M_TOKEN_INCORRECT", "The token is incorrect", 400);
  if (session.validatedTs === null) {
    await ctx.stores.sessions.markValidated(session.sid, now);
    return { ...session, validatedTs: now, mtime: now };
  }
  return session;
}

/** A validated, unexpired session (getValidated3pid, bind, unbind). */
export async function validatedSession(ctx: DomainContext, sid: string, clientSecret: string): Promise<ValidationSession> {
  const session = await ctx.stores.sessions.get(sid);
  if (!session || session.clientSecret !== clientSecret) throw new MatrixError("M_NO_VALID_SESSION", "No valid session was found matching that sid and client secret", 404);
  if (ctx.clock.now() - session.mtime > ctx.settings.sessionLifetimeMs) throw new MatrixError("M_SESSION_EXPIRED", "This validation session has expired", 400);
  if (session.validatedTs === null) throw new MatrixError("M_SESSION_NOT_VALIDATED", "This validation session has not been validated yet", 400);
  return session;
}

/** `GET 3pid/getValidated3pid`. */
export async function getValidated3pid(ctx: DomainContext, sid: string, clientSecret: string): Promise<{ medium: string; address: string; validated_at: number }> {
  const s = await validatedSession(ctx, sid, clientSecret);
  return { medium: s.medium, address: s.address, validated_at: s.validatedTs ?? s.mtime };
}
