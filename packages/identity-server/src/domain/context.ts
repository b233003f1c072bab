/**
 * What the domain services of the identity server need from the world, injected by the
 * composition root (app.ts): storage, the clock, randomness, signing keys, the mail outbox,
 * the homeserver client, rate limits, metrics and logs. Domain code never sees HTTP.
 */
import type { Clock, Notifier } from "@beckon/server-kit";
import type { Logger } from "pino";
import type { Kysely } from "kysely";
import type { Stores, TransactionRunner } from "../storage/index.js";
import type { KeyRing } from "./keys.js";
import type { HomeserverClient } from "./homeserver-client.js";

/** The mail outbox as the domain uses it (src/mail implements it). */
export interface MailQueue {
  /** Renders and stores a mail inside the caller's transaction. */
  enqueue(
    trx: Kysely<unknown>,
    mail: { to: string; kind: "validation" | "invite"; template: "validation" | "invite" | "validation-msisdn"; vars: Record<string, unknown>; dedupeKey?: string },
    now: number,
  ): Promise<void>;
  /** Wakes the sender after a commit. */
  wake(): void;
}

/** Sends an SMS (msisdn validation); the development sender only logs. */
export interface SmsSender {
  send(to: string, text: string): Promise<void>;
}

/** Rate limit checks the domain performs (keys: client address, email, sender). Throw M_LIMIT_EXCEEDED. */
export interface Limits {
  check(kind: "requestToken.ip" | "requestToken.address" | "storeInvite.sender" | "register.ip", key: string): void;
}

/** Counters the domain bumps (prom-client behind it). */
export interface DomainMetrics {
  lookups(n: number): void;
  inviteStored(): void;
  inviteDeduplicated(): void;
  deliveries(outcome: "delivered" | "retry" | "failed", n: number): void;
}

export interface TermsPolicyConfig {
  version: string;
  languages: Record<string, { name: string; url: string }>;
}

export interface DomainSettings {
  serverName: string;
  /** Other names this server answers to (destination_is checks), e.g. `127.0.0.1:P`. */
  otherNames: readonly string[];
  /** Public base URL without a trailing slash (key_validity_url, mail links, sign URLs). */
  publicBaseUrl: string;
  webClientLocation: string;
  inviteLifetimeMs: number;
  inviteDedupeWindowMs: number;
  sessionLifetimeMs: number;
  /** Reveal counts of the redacted display name (Sydent: 3 and 3). */
  redactUsernameChars: number;
  redactDomainChars: number;
  terms: Record<string, TermsPolicyConfig>;
  /** Homeservers allowed to register (empty: any). */
  homeserverAllowList: readonly string[];
  lookupLimit: number;
}

export interface DomainContext {
  stores: Stores;
  transact: TransactionRunner;
  /**
   * Like `transact`, but may share one commit with concurrent callers (SQLite group commit,
   * each caller in its own savepoint; settles only after the commit). Absent: use `transact`.
   */
  transactGrouped?: TransactionRunner;
  clock: Clock;
  notifier: Notifier;
  keys: KeyRing;
  mail: MailQueue;
  sms: SmsSender;
  homeservers: HomeserverClient;
  limits: Limits;
  metrics: DomainMetrics;
  logger: Logger;
  settings: DomainSettings;
  /** Cryptographically secure random bytes. */
  randomBytes(n: number): Uint8Array;
  /** Derive ephemeral keys from `randomBytes` (tests inject it); else node:crypto generates them. */
  deterministicKeys?: boolean;
}

/** The notifier channel that wakes the onbind delivery worker. */
export const DELIVERY_CHANNEL = "is.delivery";

const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALNUM = LETTERS + "0123456789";

/** A random string over `alphabet` (rejection sampling: no modulo bias). */
export function randomString(ctx: Pick<DomainContext, "randomBytes">, length: number, alphabet: string = ALNUM): string {
  let out = "";
  const limit = 256 - (256 % alphabet.length);
  while (out.length < length) {
    for (const b of ctx.randomBytes(length * 2)) {
      if (b < limit) out += alphabet[b % alphabet.length];
      if (out.length === length) break;
    }
  }
  return out;
}

export const ALPHABET_LETTERS = LETTERS;
export const ALPHABET_DIGITS = "0123456789";
