/**
 * How each server process is started: `beckon up` spawns its children with these, and the
 * benchmarks start the servers they measure the same way.
 *
 * - Young generation: V8's default 16 MB semi-spaces leave an idle homeserver at ~88 MB of RSS
 *   (issue 4's target is 80); 2 MB keeps it near 76 MB while halving its scavenge time against
 *   1 MB under load (a 3PID invite keeps objects alive across identity-server round trips).
 *   The identity server gets 4 MB: ~20 MB less RSS than the default at 1 M associations after
 *   a lookup burst (issue 3's 100 MB target), at full lookup and store-invite speed.
 * - glibc malloc: at most two arenas, and a fixed mmap threshold (128 KiB) so that large
 *   buffers (scrypt's 32 MiB work area on a libuv thread, big request bodies) go back to the
 *   system when freed instead of staying in a per-thread arena. Both only when the operator
 *   has not set them.
 */
export interface ServerProcessSettings {
  nodeFlags: string[];
  /** Environment variables to add (the caller's own environment wins). */
  env: Record<string, string>;
}

export function serverProcessSettings(kind: "homeserver" | "identity-server", env: NodeJS.ProcessEnv = process.env): ServerProcessSettings {
  const extra: Record<string, string> = {};
  if (env.MALLOC_ARENA_MAX === undefined) extra.MALLOC_ARENA_MAX = "2";
  if (env.MALLOC_MMAP_THRESHOLD_ === undefined) extra.MALLOC_MMAP_THRESHOLD_ = "131072";
  return { nodeFlags: [kind === "homeserver" ? "--max-semi-space-size=2" : "--max-semi-space-size=4"], env: extra };
}
