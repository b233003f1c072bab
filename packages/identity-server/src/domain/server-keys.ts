/**
 * Homeservers' signing keys, fetched from `/_matrix/key/v2/server` (through the guarded
 * homeserver client) and cached until their `valid_until_ts` (at most an hour). The response's
 * self-signature is checked before a key is trusted.
 */
import { MatrixError, decodeBase64, verifyJsonSignature, isJsonObject } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import type { Clock } from "@beckon/server-kit";
import type { Logger } from "pino";
import { HomeserverUnreachable, type HomeserverClient } from "./homeserver-client.js";

const MAX_CACHE_MS = 3_600_000;
const MAX_ENTRIES = 1000;

export class ServerKeyCache {
  readonly #cache = new Map<string, { keys: Map<string, Uint8Array>; until: number }>();
  constructor(
    private readonly client: HomeserverClient,
    private readonly clock: Clock,
    private readonly logger?: Logger,
  ) {}

  /** The key `keyId` of `origin`, or undefined when the server does not publish it. Throws 502 when unreachable. */
  async get(origin: string, keyId: string): Promise<Uint8Array | undefined> {
    const now = this.clock.now();
    const cached = this.#cache.get(origin);
    if (cached && cached.until > now && cached.keys.has(keyId)) return cached.keys.get(keyId);
    const keys = await this.#fetch(origin);
    const until = Math.min(keys.validUntil, now + MAX_CACHE_MS);
    if (this.#cache.size >= MAX_ENTRIES) this.#cache.clear();
    this.#cache.set(origin, { keys: keys.keys, until });
    return keys.keys.get(keyId);
  }

  async #fetch(origin: string): Promise<{ keys: Map<string, Uint8Array>; validUntil: number }> {
    let res;
    try {
      res = await this.client.request(origin, "/_matrix/key/v2/server", { method: "GET" });
    } catch (e) {
      // The reason stays in the logs: echoing network errors would make this an oracle.
      this.logger?.warn({ origin, err: e instanceof HomeserverUnreachable ? e.message : String(e) }, "server key fetch failed");
      throw new MatrixError("M_UNKNOWN", `Unable to contact ${origin} to fetch its signing keys`, 502);
    }
    const body = res.json();
    if (res.status !== 200 || !isJsonObject(body) || !isJsonObject(body.verify_keys)) {
      throw new MatrixError("M_UNKNOWN", `${origin} did not serve valid signing keys`, 502);
    }
    const keys = new Map<string, Uint8Array>();
    for (const [id, entry] of Object.entries(body.verify_keys)) {
      if (!isJsonObject(entry) || typeof entry.key !== "string") continue;
      try {
        const bytes = decodeBase64(entry.key);
        if (bytes.length === 32) keys.set(id, bytes);
      } catch {
        /* skip malformed keys */
      }
    }
    // Only keep keys the response is self-signed with by `origin` (the response must prove itself).
    const good = new Map<string, Uint8Array>();
    for (const [id, key] of keys) {
      if (await verifyJsonSignature(body, origin, id, key, nodeCryptoProvider)) good.set(id, key);
    }
    if (good.size === 0) throw new MatrixError("M_UNKNOWN", `${origin}'s key response is not signed by its own key`, 502);
    const validUntil = typeof body.valid_until_ts === "number" ? body.valid_until_ts : this.clock.now() + 300_000;
    return { keys: good, validUntil };
  }
}
