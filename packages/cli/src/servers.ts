/**
 * Loads the two server packages at run time and checks what they export, so that the CLI
 * works (and says what is missing) while a package is still being built: `beckon up` starts
 * whatever exists instead of crashing.
 */

export type ServerKind = "homeserver" | "identity-server";

/** `(args) → exit code`; the server keeps running after resolving 0 for the plain form. */
export type RunCli = (args: readonly string[]) => Promise<number>;

/** A config shape as server-kit's `configSpec` exposes it: nested objects of validators. */
export interface ShapeLike {
  readonly [key: string]: unknown;
}

export interface ServerModule {
  kind: ServerKind;
  /** What to call the server in messages. */
  title: string;
  package: string;
  runCli?: RunCli;
  /** The config spec's shape, to drop settings this version does not know. */
  shape?: ShapeLike;
  /** Validates a config file; throws server-kit's ConfigError (with `.problems`). */
  loadConfig?: (opts: { file?: string; env?: Record<string, string | undefined> }) => unknown;
  /** Why the server cannot run (missing package or exports), when it cannot. */
  missing?: string;
}

const INFO: Record<ServerKind, { title: string; pkg: string; run: string; spec: string; load: string }> = {
  homeserver: { title: "homeserver", pkg: "@beckon/homeserver", run: "runHomeserverCli", spec: "homeserverConfigSpec", load: "loadHomeserverConfig" },
  "identity-server": {
    title: "identity server",
    pkg: "@beckon/identity-server",
    run: "runIdentityServerCli",
    spec: "identityServerConfigSpec",
    load: "loadIdentityServerConfig",
  },
};

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null;
}

/** Imports a server package and reports what it offers; never throws. */
export async function loadServerModule(kind: ServerKind): Promise<ServerModule> {
  const info = INFO[kind];
  const base: ServerModule = { kind, title: info.title, package: info.pkg };
  let mod: unknown;
  try {
    // A variable specifier: the CLI must build and run even while a package lacks these exports.
    const specifier: string = info.pkg;
    mod = (await import(specifier)) as unknown;
  } catch (e) {
    return { ...base, missing: `${info.pkg} could not be loaded (${e instanceof Error ? e.message.split("\n")[0] : String(e)}); run \`npm run build\`` };
  }
  if (!isRecord(mod)) return { ...base, missing: `${info.pkg} has no exports` };
  const run = mod[info.run];
  const spec = mod[info.spec];
  const load = mod[info.load];
  const out: ServerModule = { ...base };
  if (typeof run === "function") out.runCli = run as RunCli;
  else out.missing = `${info.pkg} does not export ${info.run}() yet`;
  if (isRecord(spec) && isRecord(spec.shape)) out.shape = spec.shape;
  if (typeof load === "function") out.loadConfig = load as ServerModule["loadConfig"] & object;
  return out;
}

/**
 * Drops the settings `shape` does not declare (a newer CLI with an older server, or the other
 * way round), returning what was dropped as dotted paths. Leaves (validators) keep any value.
 */
export function pruneToShape(config: Record<string, unknown>, shape: ShapeLike, prefix = ""): { config: Record<string, unknown>; dropped: string[] } {
  const out: Record<string, unknown> = {};
  const dropped: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    const field = Object.prototype.hasOwnProperty.call(shape, key) ? shape[key] : undefined;
    const path = prefix ? `${prefix}.${key}` : key;
    if (field === undefined) {
      dropped.push(path);
      continue;
    }
    // A nested section is a plain object of fields; a leaf is a validator function.
    if (typeof field !== "function" && isRecord(field) && isRecord(value) && !Array.isArray(value)) {
      const inner = pruneToShape(value, field, path);
      out[key] = inner.config;
      dropped.push(...inner.dropped);
    } else {
      out[key] = value;
    }
  }
  return { config: out, dropped };
}

/** The problems of a ConfigError-like error, or its message. */
export function configProblems(e: unknown): string[] {
  if (isRecord(e) && Array.isArray(e.problems)) return e.problems.map(String);
  return [e instanceof Error ? e.message : String(e)];
}
