/**
 * Terms of service (https://spec.matrix.org/v1.18/identity-service-api/#terms-of-service):
 * policies from config; acceptances accumulate; once every policy has an accepted URL in some
 * language the account's consent version becomes the current terms fingerprint.
 */
import { createHash } from "node:crypto";
import { MatrixError } from "@beckon/protocol";
import type { DomainContext, TermsPolicyConfig } from "./context.js";
import type { Principal } from "./accounts.js";

export function termsResponse(terms: Record<string, TermsPolicyConfig>): { policies: Record<string, Record<string, unknown>> } {
  const policies: Record<string, Record<string, unknown>> = {};
  for (const [id, p] of Object.entries(terms)) policies[id] = { version: p.version, ...p.languages };
  return { policies };
}

/** A fingerprint of the configured terms (changes when a policy or version changes); undefined when none. */
export function termsFingerprint(terms: Record<string, TermsPolicyConfig>): string | undefined {
  const ids = Object.keys(terms).sort();
  if (ids.length === 0) return undefined;
  const text = ids.map((id) => `${id}\u0000${terms[id]?.version ?? ""}`).join("\u0001");
  return createHash("sha256").update(text).digest("base64url").slice(0, 22);
}

/** `POST terms`. Unknown URLs are refused, nothing is stored then (NOTSPEC: 400 `M_INVALID_PARAM`; Sydent says `M_UNKNOWN`). */
export async function acceptTerms(ctx: DomainContext, principal: Principal, urls: readonly string[]): Promise<void> {
  const terms = ctx.settings.terms;
  const known = new Set<string>();
  for (const p of Object.values(terms)) for (const l of Object.values(p.languages)) known.add(l.url);
  const unknown = urls.filter((u) => !known.has(u));
  if (unknown.length > 0) throw new MatrixError("M_INVALID_PARAM", `Unrecognised terms URL: ${unknown[0]}`, 400);
  const accepted = new Set(await ctx.stores.accounts.acceptTerms(principal.userId, urls));
  const version = termsFingerprint(terms);
  if (version === undefined) return;
  const all = Object.values(terms).every((p) => Object.values(p.languages).some((l) => accepted.has(l.url)));
  if (all) await ctx.stores.accounts.setConsentVersion(principal.userId, version);
}
