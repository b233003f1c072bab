/**
 * Defects the fuzzer found that are not fixed yet (docs/RELIABILITY.md, "Defects found").
 * A violation matching one is counted, not failed, and its minimal request is replayed by a
 * `todo` test (known-defects.test.ts) until the owner fixes it; then the entry is deleted
 * (all seven found so far are fixed — see docs/RELIABILITY.md).
 */
import type { InjectOptions } from "fastify";
import type { KnownDefect } from "./runner.js";

/** True when a JSON value holds a number canonical JSON refuses (float, or an integer outside ±(2^53-1)). */
export function hasNonCanonicalNumber(x: unknown, depth = 0): boolean {
  if (depth > 200) return false;
  if (typeof x === "number") return !Number.isSafeInteger(x) && !Object.is(x, -0) ? true : false;
  if (Array.isArray(x)) return x.some((e) => hasNonCanonicalNumber(e, depth + 1));
  if (typeof x === "object" && x !== null) return Object.values(x).some((e) => hasNonCanonicalNumber(e, depth + 1));
  return false;
}

export interface DocumentedDefect extends KnownDefect {
  /** Which server(s) and whose code. */
  owner: string;
  summary: string;
  /** The minimal reproducing request. */
  repro: InjectOptions;
  /** True when the answer to `repro` keeps every invariant (i.e. the defect is fixed). */
  fixed(res: { status: number; body: string; contentType: string }): boolean;
}

// DEF-1, 2, 3, 4 and 6 were fixed by the lead after the fuzzer found them (see docs/RELIABILITY.md);
// DEF-5 and DEF-7 by the identity-server owner. An empty list: every regression fails the fuzzer.
export const KNOWN_DEFECTS: DocumentedDefect[] = [];
