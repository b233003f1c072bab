/**
 * Hashed lookups (https://spec.matrix.org/v1.18/identity-service-api/#post_matrixidentityv2lookup).
 * Associations carry their sha256 hash at the current pepper in an indexed column, so a lookup
 * of N hashes costs N index probes. Rotating the pepper rewrites those hashes.
 */
import { createHash } from "node:crypto";
import { MatrixError, type UserId } from "@beckon/protocol";
import { randomString, type DomainContext } from "./context.js";
import type { Stores } from "../storage/index.js";

export const PEPPER_SETTING = "lookup_pepper";
export const ALGORITHMS = ["sha256", "none"] as const;

/** sha256 lookup hash with node:crypto: unpadded URL-safe base64 of SHA-256(`"<address> <medium> <pepper>"`). */
export function hashAddress(address: string, medium: string, pepper: string): string {
  return createHash("sha256").update(`${address} ${medium} ${pepper}`, "utf8").digest("base64url");
}

/** The current pepper, cached briefly (several processes: a rotation is seen within the TTL). */
export class PepperCache {
  #value: string | undefined;
  #loadedAt = -Infinity;
  constructor(private readonly ttlMs = 5_000) {}
  async get(ctx: Pick<DomainContext, "stores" | "clock">): Promise<string> {
    const now = ctx.clock.now();
    if (this.#value !== undefined && now - this.#loadedAt < this.ttlMs) return this.#value;
    const v = await ctx.stores.settings.get(PEPPER_SETTING);
    if (v === undefined) throw new Error("lookup pepper not initialised");
    this.#value = v;
    this.#loadedAt = now;
    return v;
  }
  set(value: string, now: number): void {
    this.#value = value;
    this.#loadedAt = now;
  }
}

/**
 * Ensures a pepper exists at start: the configured one (rotating to it if it differs from the
 * stored one), else the stored one, else a new random one.
 */
export async function initPepper(ctx: Pick<DomainContext, "stores" | "transact" | "randomBytes" | "logger">, configured: string | undefined): Promise<string> {
  const stored = await ctx.stores.settings.get(PEPPER_SETTING);
  if (configured !== undefined && configured !== "" && stored !== undefined && stored !== configured) {
    return rotatePepper(ctx, configured);
  }
  return ctx.stores.settings.setIfAbsent(PEPPER_SETTING, configured || randomString(ctx, 16));
}

/** Sets a new pepper (random when absent) and rehashes every association in one transaction. */
export async function rotatePepper(ctx: Pick<DomainContext, "transact" | "randomBytes" | "logger">, next?: string): Promise<string> {
  const pepper = next ?? randomString(ctx, 16);
  const n = await ctx.transact(async (s: Stores) => {
    await s.settings.set(PEPPER_SETTING, pepper);
    return s.associations.rehashAll((address, medium) => hashAddress(address, medium, pepper));
  });
  ctx.logger.info({ associations: n }, "lookup pepper rotated");
  return pepper;
}

export async function hashDetails(ctx: DomainContext, pepper: PepperCache): Promise<{ lookup_pepper: string; algorithms: string[] }> {
  return { lookup_pepper: await pepper.get(ctx), algorithms: [...ALGORITHMS] };
}

export async function lookup(
  ctx: DomainContext,
  pepperCache: PepperCache,
  req: { algorithm: string; pepper: string; addresses: readonly string[] },
): Promise<{ mappings: Record<string, UserId> }> {
  if (!(ALGORITHMS as readonly string[]).includes(req.algorithm)) throw new MatrixError("M_INVALID_PARAM", "Unsupported algorithm", 400);
  const current = await pepperCache.get(ctx);
  if (req.pepper !== current) {
    throw new MatrixError("M_INVALID_PEPPER", "Pepper does not match the server's", 400, { algorithm: req.algorithm, lookup_pepper: current });
  }
  if (req.addresses.length > ctx.settings.lookupLimit) {
    throw new MatrixError("M_TOO_LARGE", `At most ${ctx.settings.lookupLimit} addresses per lookup`, 400);
  }
  const now = ctx.clock.now();
  const mappings: Record<string, UserId> = {};
  if (req.algorithm === "sha256") {
    const found = await ctx.stores.associations.lookupHashes(req.addresses, now);
    for (const h of req.addresses) {
      const m = found.get(h);
      if (m !== undefined) mappings[h] = m as UserId;
    }
  } else {
    const pairs: { medium: string; address: string; key: string }[] = [];
    for (const entry of req.addresses) {
      const i = entry.lastIndexOf(" ");
      if (i <= 0 || i === entry.length - 1) throw new MatrixError("M_INVALID_PARAM", "Each address must be \"<address> <medium>\"", 400);
      const medium = entry.slice(i + 1);
      const raw = entry.slice(0, i);
      pairs.push({ medium, address: medium === "email" ? raw.normalize("NFKC").toLowerCase() : raw, key: entry });
    }
    const found = await ctx.stores.associations.lookupPlain(pairs, now);
    for (const p of pairs) {
      const m = found.get(`${p.address} ${p.medium}`);
      if (m !== undefined) mappings[p.key] = m as UserId;
    }
  }
  ctx.metrics.lookups(req.addresses.length);
  return { mappings };
}
