/**
 * Local adjustments to protocol descriptors before registering them.
 *
 * The kit's Fastify instance ignores trailing slashes, so an alias that differs from another
 * path only by a trailing `/` (the empty-state-key forms of `rooms/{roomId}/state/...`,
 * `/_matrix/key/v2/server/`) would be registered twice; it is served anyway by the slash-less
 * route. {@link slashTolerantRouter} drops such twins for every route.
 */
import type { Router } from "@beckon/server-kit";

export function withoutSlashTwins<D extends { readonly path: string; readonly aliases?: readonly string[] }>(d: D): D {
  const norm = (p: string) => (p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p);
  const seen = new Set<string>([norm(d.path)]);
  const aliases: string[] = [];
  for (const a of d.aliases ?? []) {
    const n = norm(a);
    if (seen.has(n)) continue;
    seen.add(n);
    aliases.push(a);
  }
  return { ...d, aliases } as D;
}

/** A router that registers each descriptor without its trailing-slash twins. */
export function slashTolerantRouter<P>(inner: Router<P>): Router<P> {
  return {
    add(d, handler) {
      inner.add(withoutSlashTwins(d), handler);
    },
  };
}
