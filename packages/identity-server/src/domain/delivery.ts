/**
 * The onbind delivery worker (the heart of invites that are never lost): rows of the durable
 * queue are claimed with a lease, grouped per (mxid, address), signed with the long-term key
 * (`ed25519:0`, DECISIONS "Signing and keys") and POSTed to the mxid's homeserver at
 * `/_matrix/federation/v1/3pid/onbind`. 2xx → delivered (the invite is marked delivered);
 * a 4xx other than 429 → permanent failure (logged, counted); 5xx, 429 or a network error →
 * retried with capped, jittered exponential back-off. Claims survive nothing: a crash lets the
 * lease lapse and the row is delivered again (the homeserver copes with duplicates).
 */
import { idServerName, isValidUserId, type UserId } from "@beckon/protocol";
import { inTransaction } from "@beckon/server-kit";
import { DELIVERY_CHANNEL, type DomainContext } from "./context.js";
import { HomeserverUnreachable } from "./homeserver-client.js";
import { ASSOCIATION_LIFETIME_MS } from "./associations.js";
import { createStores, type DeliveryItem, type StoredInvite } from "../storage/index.js";

export interface DeliveryOptions {
  /** Rows claimed per round (default 100). */
  batchSize?: number;
  /** How long a claim lasts before another worker may retry it (default 60 s). */
  leaseMs?: number;
  /** First retry delay (default 1 s), doubled per attempt. */
  baseBackoffMs?: number;
  /** Longest retry delay (default 1 h). */
  maxBackoffMs?: number;
  /** Longest sleep between polls when idle (default 30 s; other processes may queue work). */
  idlePollMs?: number;
  /** Homeserver requests in flight at once (default 8). */
  concurrency?: number;
  /** Timeout of one onbind request (default 30 s). */
  requestTimeoutMs?: number;
  /** Jitter source (tests pass a seeded one). */
  random?: () => number;
}

export const ONBIND_PATH = "/_matrix/federation/v1/3pid/onbind";

/** Exponential back-off with "equal jitter": between half and all of min(max, base·2^(attempt-1)). */
export function backoffMs(attempt: number, base: number, max: number, random: () => number = Math.random): number {
  const full = Math.min(max, base * 2 ** Math.max(0, Math.min(30, attempt - 1)));
  return Math.round(full / 2 + (random() * full) / 2);
}

type Outcome = { kind: "delivered" } | { kind: "retry"; error: string } | { kind: "failed"; error: string };

export class DeliveryWorker {
  readonly #ctx: DomainContext;
  readonly #o: Required<DeliveryOptions>;
  #unsubscribe: (() => void) | undefined;
  #cancelTimer: (() => void) | undefined;
  #running: Promise<number> | undefined;
  #again = false;
  #stopped = true;
  /** Aborts in-flight onbind requests at shutdown (their rows are rescheduled, not lost). */
  #abort = new AbortController();

  constructor(ctx: DomainContext, options: DeliveryOptions = {}) {
    this.#ctx = ctx;
    this.#o = {
      batchSize: options.batchSize ?? 100,
      leaseMs: options.leaseMs ?? 60_000,
      baseBackoffMs: options.baseBackoffMs ?? 1_000,
      maxBackoffMs: options.maxBackoffMs ?? 3_600_000,
      idlePollMs: options.idlePollMs ?? 30_000,
      concurrency: options.concurrency ?? 8,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      random: options.random ?? Math.random,
    };
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#abort = new AbortController();
    this.#unsubscribe = this.#ctx.notifier.subscribe(DELIVERY_CHANNEL, () => this.wake());
    this.wake();
  }

  /** Stops polling, aborts in-flight requests (their rows are retried later) and waits for the round. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    this.#cancelTimer?.();
    this.#abort.abort();
    await this.#running?.catch(() => 0);
  }

  /** Runs a round now (or right after the current one). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    void this.#loop();
  }

  async #loop(): Promise<void> {
    this.#cancelTimer?.();
    do {
      this.#again = false;
      this.#running = this.runOnce().catch((e: unknown) => {
        this.#ctx.logger.error({ err: e instanceof Error ? e.message : String(e) }, "delivery round failed");
        return 0;
      });
      const n = await this.#running;
      this.#running = undefined;
      if (n >= this.#o.batchSize) this.#again = true;
    } while (this.#again && !this.#stopped);
    if (this.#stopped) return;
    let delay = this.#o.idlePollMs;
    try {
      const next = await this.#ctx.stores.delivery.nextDue();
      if (next !== undefined) delay = Math.min(delay, Math.max(0, next - this.#ctx.clock.now()));
    } catch {
      /* database trouble: poll again later */
    }
    if (!this.#stopped) this.#cancelTimer = this.#ctx.clock.setTimeout(() => this.wake(), delay);
  }

  /** One round: claim due rows, deliver them grouped per (mxid, address). Returns rows claimed. */
  async runOnce(): Promise<number> {
    const ctx = this.#ctx;
    const now = ctx.clock.now();
    const claimed = await inTransaction(ctx.stores.db, (trx) =>
      createStores(trx, ctx.stores.engine).delivery.claimDue(now, this.#o.batchSize, this.#o.leaseMs),
    );
    if (claimed.length === 0) return 0;
    const groups = new Map<string, DeliveryItem[]>();
    for (const item of claimed) {
      const key = `${item.mxid}\u0000${item.medium}\u0000${item.address}`;
      const g = groups.get(key);
      if (g) g.push(item);
      else groups.set(key, [item]);
    }
    const queue = [...groups.values()];
    const workers = Array.from({ length: Math.min(this.#o.concurrency, queue.length) }, async () => {
      for (let g = queue.shift(); g; g = queue.shift()) await this.#deliverGroup(g);
    });
    await Promise.all(workers);
    return claimed.length;
  }

  async #deliverGroup(items: DeliveryItem[]): Promise<void> {
    const ctx = this.#ctx;
    const first = items[0];
    if (!first) return;
    const now = ctx.clock.now();
    const live: { item: DeliveryItem; invite: StoredInvite }[] = [];
    const dead: DeliveryItem[] = [];
    for (const item of items) {
      const invite = await ctx.stores.invites.get(item.token);
      if (invite && invite.expiresTs > now) live.push({ item, invite });
      else dead.push(item);
    }
    if (dead.length > 0) {
      await ctx.stores.delivery.markFailed(dead, "invite expired", now);
      ctx.metrics.deliveries("failed", dead.length);
    }
    if (live.length === 0) return;
    if (!isValidUserId(first.mxid)) {
      await ctx.stores.delivery.markFailed(items, "invalid mxid", now);
      ctx.metrics.deliveries("failed", items.length);
      return;
    }
    const server = idServerName(first.mxid as UserId);
    const assoc = await ctx.stores.associations.get(first.medium, first.address, now);
    const ts = assoc?.ts ?? now;
    const body = ctx.keys.sign({
      medium: first.medium,
      address: first.address,
      mxid: first.mxid,
      ts,
      not_before: assoc?.notBefore ?? ts,
      not_after: assoc?.notAfter ?? ts + ASSOCIATION_LIFETIME_MS,
      invites: live.map(({ invite }) => ({
        medium: invite.medium,
        address: invite.address,
        mxid: first.mxid,
        room_id: invite.roomId,
        sender: invite.sender,
        token: invite.token,
        signed: ctx.keys.sign({ mxid: first.mxid, token: invite.token, sender: invite.sender }),
      })),
    });
    const outcome = await this.#post(server, body);
    const keys = live.map((l) => l.item);
    const done = ctx.clock.now();
    if (outcome.kind === "delivered") {
      await ctx.transact(async (s) => {
        await s.delivery.markDelivered(keys, done);
        await s.invites.markDelivered(
          live.map((l) => l.invite.token),
          done,
        );
      });
      ctx.metrics.deliveries("delivered", keys.length);
      ctx.logger.info({ server, invites: keys.length }, "onbind delivered");
    } else if (outcome.kind === "failed") {
      await ctx.stores.delivery.markFailed(keys, outcome.error, done);
      ctx.metrics.deliveries("failed", keys.length);
      ctx.logger.warn({ server, invites: keys.length, error: outcome.error }, "onbind refused permanently");
    } else {
      const attempts = Math.max(...keys.map((k) => k.attempts)) + 1;
      const next = done + backoffMs(attempts, this.#o.baseBackoffMs, this.#o.maxBackoffMs, this.#o.random);
      await ctx.stores.delivery.reschedule(keys, attempts, next, outcome.error, done);
      ctx.metrics.deliveries("retry", keys.length);
      ctx.logger.info({ server, invites: keys.length, attempts, retryInMs: next - done, error: outcome.error }, "onbind will be retried");
    }
  }

  async #post(server: string, body: unknown): Promise<Outcome> {
    try {
      const res = await this.#ctx.homeservers.request(server, ONBIND_PATH, {
        method: "POST",
        body,
        timeoutMs: this.#o.requestTimeoutMs,
        signal: this.#abort.signal,
      });
      if (res.status >= 200 && res.status < 300) return { kind: "delivered" };
      const error = `HTTP ${res.status}: ${res.text.slice(0, 200)}`;
      if (res.status >= 400 && res.status < 500 && res.status !== 429) return { kind: "failed", error };
      return { kind: "retry", error };
    } catch (e) {
      if (e instanceof HomeserverUnreachable && e.kind === "invalid") return { kind: "failed", error: e.message };
      return { kind: "retry", error: e instanceof Error ? e.message : String(e) };
    }
  }
}
