/**
 * Password hashing with scrypt (memory-hard, `node:crypto`, run on libuv's thread pool so the
 * event loop stays free). Stored as `scrypt$N$r$p$<salt b64>$<hash b64>` so the cost can change
 * later without breaking old hashes.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

const KEY_LEN = 32;

function scryptAsync(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize("NFKC"), salt, KEY_LEN, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Hashes a password (cost `n`, a power of two). */
export async function hashPassword(password: string, n = 16384): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, n, 8, 1);
  return `scrypt$${n}$8$1$${salt.toString("base64")}$${key.toString("base64")}`;
}

/** True when `password` matches `stored`; false for malformed hashes. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![n, r, p].every((x) => Number.isSafeInteger(x) && x > 0)) return false;
  const salt = Buffer.from(parts[4] ?? "", "base64");
  const expected = Buffer.from(parts[5] ?? "", "base64");
  const key = await scryptAsync(password, salt, n, r, p);
  return key.length === expected.length && timingSafeEqual(key, expected);
}
