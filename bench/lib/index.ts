/** Helpers shared by the benchmarks. */
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import { serverProcessSettings } from "@beckon/server-kit/process-settings";
import { readFileSync, writeFileSync } from "node:fs";

/** The p-th percentile of an ascending array (nearest rank). */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/**
 * Keep-alive connections for {@link json}. node:http rather than `fetch`: undici's fetch costs
 * the load generator several times more CPU per request, CPU the servers being measured share.
 */
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** A JSON request to a local server: status and parsed body (`{}` when empty). */
export function json(url: string, init: { method?: string; token?: string; body?: unknown } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  const payload = init.body !== undefined ? JSON.stringify(init.body) : undefined;
  if (payload !== undefined) {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: init.method ?? "GET", headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        try {
          resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} });
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** The body of a 200 answer; anything else stops the benchmark. */
export async function must(p: Promise<{ status: number; body: Record<string, unknown> }>, what: string): Promise<Record<string, unknown>> {
  const r = await p;
  if (r.status !== 200) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Runs `fn(0..n-1)` with at most `c` in flight; results in order. */
export async function pool<T>(n: number, c: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(c, n) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= n) return;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

/** `--key=value` / `--flag` arguments as a map (`--flag` → "true"); a value may itself hold `=`. */
export function benchArgs(argv: readonly string[] = process.argv.slice(2)): Map<string, string> {
  return new Map(
    argv.map((a) => {
      const s = a.replace(/^--/, "");
      const eq = s.indexOf("=");
      return eq < 0 ? [s, "true"] : [s.slice(0, eq), s.slice(eq + 1)];
    }),
  );
}

/** A server started as operators start it: `beckon <kind> --config <file>` in a child process. */
export interface BeckonServerProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  /** SIGTERM (graceful), SIGKILL after 10 s. */
  stop(): Promise<void>;
  /** SIGKILL. */
  kill(): Promise<void>;
}

/**
 * Node flags from the environment for a benchmarked server, after its own (so they win):
 * BENCH_SERVER_NODE_FLAGS (space-separated) for every server, e.g. to profile them —
 * BENCH_SERVER_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" — and
 * BENCH_HOMESERVER_NODE_FLAGS / BENCH_IDENTITY_SERVER_NODE_FLAGS for one kind only.
 */
export function extraNodeFlags(kind: "homeserver" | "identity-server"): string[] {
  const own = process.env[`BENCH_${kind.toUpperCase().replace("-", "_")}_NODE_FLAGS`] ?? "";
  return `${process.env.BENCH_SERVER_NODE_FLAGS ?? ""} ${own}`.split(" ").filter(Boolean);
}

const BECKON_BIN = new URL("../../../packages/cli/dist/bin.js", import.meta.url).pathname;

/**
 * Writes `config` (JSON is YAML) to `configFile` and runs `beckon <kind> --config configFile`
 * with `nodeFlags`; resolves once `readyPath` answers 200 on `http://<config.listen>`.
 */
export async function startBeckonServer(
  kind: "homeserver" | "identity-server",
  config: Record<string, unknown> & { listen: string },
  opts: { configFile: string; readyPath: string; nodeFlags?: readonly string[] },
): Promise<BeckonServerProcess> {
  writeFileSync(opts.configFile, JSON.stringify(config, null, 2));
  // As `beckon up` starts it (node flags and malloc settings), unless `nodeFlags` replaces the flags.
  const settings = serverProcessSettings(kind);
  const child = spawn(process.execPath, [...(opts.nodeFlags ?? settings.nodeFlags), ...extraNodeFlags(kind), BECKON_BIN, kind, "--config", opts.configFile], {
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...settings.env, ...process.env },
  });
  let exited: number | null | undefined;
  child.on("exit", (code) => (exited = code));
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  process.once("exit", () => child.kill("SIGKILL"));
  const url = `http://${config.listen}`;
  for (const deadline = Date.now() + 60_000; ; ) {
    if (exited !== undefined) throw new Error(`beckon ${kind} exited with ${exited}`);
    if (Date.now() > deadline) throw new Error(`beckon ${kind} did not start in 60 s`);
    if (await fetch(url + opts.readyPath).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const signal = async (sig: NodeJS.Signals, killAfterMs: number) => {
    if (exited !== undefined) return;
    child.kill(sig);
    const t = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    await gone;
    clearTimeout(t);
  };
  return { child, pid: child.pid!, url, stop: () => signal("SIGTERM", 10_000), kill: () => signal("SIGKILL", 0) };
}

/** CPU time (user + system, ms) process `pid` has used so far. */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * (1000 / 100);
}

/** A memory figure of process `pid` from /proc (VmRSS, RssAnon, RssFile), in MB. */
export function rssMb(pid: number, field: "VmRSS" | "RssAnon" | "RssFile" = "VmRSS"): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}
