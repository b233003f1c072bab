/**
 * Coalescing of small writes: calls made close together (in the same turn of the event loop,
 * or within `delayMs`) are handed to `run` as one list — one statement and one commit where
 * each call alone would pay for its own. Each caller's promise settles with its own result, or
 * with the error of the `run` its item was part of.
 *
 * @example
 * const claim = batched(async (keys: string[]) => insertReturningWinners(keys), { max: 100 });
 * const won = await claim("key");
 */
export function batched<I, R>(run: (items: I[]) => Promise<R[]>, opts: { delayMs?: number; max?: number } = {}): (item: I) => Promise<R> {
  const max = Math.max(1, opts.max ?? 100);
  const queue: { item: I; resolve(r: R): void; reject(e: unknown): void }[] = [];
  let scheduled = false;

  async function flush(): Promise<void> {
    try {
      // Calls made while a `run` is under way go into the next one.
      while (queue.length > 0) {
        const part = queue.splice(0, max);
        try {
          const results = await run(part.map((p) => p.item));
          part.forEach((p, i) => p.resolve(results[i] as R));
        } catch (e) {
          for (const p of part) p.reject(e);
        }
      }
    } finally {
      scheduled = false;
    }
  }

  return (item) =>
    new Promise<R>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (scheduled) return;
      scheduled = true;
      if (opts.delayMs === undefined) setImmediate(() => void flush());
      else setTimeout(() => void flush(), opts.delayMs);
    });
}
