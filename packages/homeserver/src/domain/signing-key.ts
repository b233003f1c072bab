/**
 * The server's ed25519 signing key: generated once, persisted in the database (first writer
 * wins when several processes start together), loaded on every start.
 */
import { randomBytes } from "node:crypto";
import { decodeBase64, encodeBase64 } from "@beckon/protocol";
import type { AccountStore } from "../storage/index.js";
import type { ServerSigningKey } from "./pdu.js";

export async function loadOrCreateSigningKey(store: AccountStore, serverName: string, now: number): Promise<ServerSigningKey> {
  let stored = await store.getSigningKey();
  if (!stored) {
    const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let version = "a_";
    for (const b of randomBytes(4)) version += alphabet[b % alphabet.length];
    stored = await store.ensureSigningKey({ keyId: `ed25519:${version}`, seed: encodeBase64(randomBytes(32)), now });
  }
  return { serverName, keyId: stored.keyId, seed: decodeBase64(stored.seed) };
}
