/**
 * `npm run bench -- client [--requests=3000] [--jobs=10000] [--json]`: the SDK's overhead per call
 * next to raw `fetch` against the same loopback endpoint (`GET …/account/whoami`, keep-alive,
 * the two interleaved in blocks so drift hits both), and the memory held by 10 000 calls
 * waiting in one queue. Figures go in bench/RESULTS.md (## client). Target: ≤ 10 % added p50.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import { setMaxListeners } from "node:events";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { MatrixClient, Transport, type FetchLike } from "@beckon/client";
import { percentile, benchArgs } from "./lib/index.js";

const args = benchArgs();
const requests = Number(args.get("requests") ?? "3000");
const jobs = Number(args.get("jobs") ?? "10000");
if (!(requests >= 100 && requests <= 100_000)) throw new Error("--requests must be in [100, 100000]");
if (!(jobs >= 100 && jobs <= 1_000_000)) throw new Error("--jobs must be in [100, 1000000]");

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const BODY = JSON.stringify({ user_id: "@alice:localhost:8008", device_id: "ABCDEFGHIJ", is_guest: false });


async function latency(): Promise<{ raw: number[]; rawTimeout: number[]; sdk: number[]; lean: number[] }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(BODY) }).end(BODY);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const url = `${base}/_matrix/client/v3/account/whoami`;
  const client = new MatrixClient({ baseUrl: base, accessToken: "syt_benchmark_token" });
  const raw = async (): Promise<unknown> => {
    const res = await fetch(url, { headers: { authorization: "Bearer syt_benchmark_token", accept: "application/json" } });
    return res.json();
  };
  // The same protection the SDK gives by default: a 60 s per-attempt timeout through an AbortSignal.
  const rawTimeout = async (): Promise<unknown> => {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), 60_000);
    try {
      const res = await fetch(url, { headers: { authorization: "Bearer syt_benchmark_token", accept: "application/json" }, signal: ctrl.signal });
      return await res.json();
    } finally {
      clearTimeout(timer);
    }
  };
  const sdk = (): Promise<unknown> => client.whoami();
  // No per-attempt timeout and no signal: nothing can abort, so no AbortSignal reaches undici.
  const lean = (): Promise<unknown> => client.whoami({ timeoutMs: 0 });
  const time = async (f: () => Promise<unknown>, out: number[]): Promise<void> => {
    const t0 = performance.now();
    await f();
    out.push(performance.now() - t0);
  };
  // Warm up both paths (connection pool, JIT).
  for (let i = 0; i < 300; i++) {
    await raw();
    await rawTimeout();
    await sdk();
    await lean();
  }
  const rt: number[] = [];
  const r: number[] = [];
  const s: number[] = [];
  const l: number[] = [];
  const block = 50;
  for (let done = 0; done < requests; done += block) {
    for (let i = 0; i < block; i++) await time(raw, r);
    for (let i = 0; i < block; i++) await time(rawTimeout, rt);
    for (let i = 0; i < block; i++) await time(sdk, s);
    for (let i = 0; i < block; i++) await time(lean, l);
  }
  server.closeAllConnections();
  await new Promise((res) => server.close(res));
  const sorted = (xs: number[]) => xs.sort((a, b) => a - b);
  return { raw: sorted(r), rawTimeout: sorted(rt), sdk: sorted(s), lean: sorted(l) };
}

async function queueMemory(): Promise<{ bytesPerJob: number; settledMs: number }> {
  // The first call never answers, so every other call waits in the queue.
  const never: FetchLike = (_url, init) =>
    new Promise((_resolve, reject) => init.signal?.addEventListener("abort", () => reject(init.signal?.reason), { once: true }));
  const transport = new Transport({ fetch: never });
  const ctrl = new AbortController();
  setMaxListeners(jobs + 10, ctrl.signal); // one listener per waiting call, by design
  const req = { baseUrl: "http://127.0.0.1:1", method: "PUT" as const, path: "/_matrix/client/v3/rooms/!r%3Ahs/send/m.room.message/t", body: { msgtype: "m.text", body: "hi" } };
  gc();
  const before = process.memoryUsage().heapUsed;
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < jobs; i++) pending.push(transport.send(req, { queueId: "room", signal: ctrl.signal, timeoutMs: 0 }).catch(() => undefined));
  gc();
  const after = process.memoryUsage().heapUsed;
  if (transport.queues.size("room") !== jobs - 1) throw new Error(`expected ${jobs - 1} waiting, got ${transport.queues.size("room")}`);
  const t0 = performance.now();
  ctrl.abort();
  await Promise.all(pending);
  const settledMs = performance.now() - t0;
  if (transport.queues.size() !== 0) throw new Error("queue not drained after abort");
  return { bytesPerJob: (after - before) / jobs, settledMs };
}

const lat = await latency();
const mem = await queueMemory();
const p = (xs: number[], q: number) => percentile(xs, q) * 1000; // µs
const result = {
  requests,
  raw: { p50: p(lat.raw, 50), p90: p(lat.raw, 90), p99: p(lat.raw, 99) },
  rawTimeout: { p50: p(lat.rawTimeout, 50), p90: p(lat.rawTimeout, 90), p99: p(lat.rawTimeout, 99) },
  sdk: { p50: p(lat.sdk, 50), p90: p(lat.sdk, 90), p99: p(lat.sdk, 99) },
  sdkNoTimeout: { p50: p(lat.lean, 50), p90: p(lat.lean, 90), p99: p(lat.lean, 99) },
  addedP50Percent: ((percentile(lat.sdk, 50) - percentile(lat.raw, 50)) / percentile(lat.raw, 50)) * 100,
  addedP50PercentVsRawTimeout: ((percentile(lat.sdk, 50) - percentile(lat.rawTimeout, 50)) / percentile(lat.rawTimeout, 50)) * 100,
  addedP50PercentNoTimeout: ((percentile(lat.lean, 50) - percentile(lat.raw, 50)) / percentile(lat.raw, 50)) * 100,
  jobs,
  queuedBytesPerJob: mem.bytesPerJob,
  abortAllMs: mem.settledMs,
};

if (args.has("json")) {
  console.log(JSON.stringify(result));
} else {
  const f = (x: number) => x.toFixed(0).padStart(6);
  console.log(`client bench — Node ${process.version}, ${os.cpus()[0]?.model ?? "cpu"} ×${os.cpus().length}`);
  console.log(`GET account/whoami on 127.0.0.1, ${requests} sequential calls each (µs):`);
  console.log(`            p50    p90    p99`);
  console.log(`raw fetch ${f(result.raw.p50)} ${f(result.raw.p90)} ${f(result.raw.p99)}`);
  console.log(`raw+tmo   ${f(result.rawTimeout.p50)} ${f(result.rawTimeout.p90)} ${f(result.rawTimeout.p99)}   (raw fetch with a 60 s timeout AbortSignal)`);
  console.log(`SDK       ${f(result.sdk.p50)} ${f(result.sdk.p90)} ${f(result.sdk.p99)}   (defaults: 60 s per-attempt timeout, abortable)`);
  console.log(`SDK lean  ${f(result.sdkNoTimeout.p50)} ${f(result.sdkNoTimeout.p90)} ${f(result.sdkNoTimeout.p99)}   (timeoutMs: 0, no signal)`);
  console.log(`added latency at p50 (target ≤ 10 %): SDK defaults vs raw+tmo ${result.addedP50PercentVsRawTimeout.toFixed(1)} %, SDK lean vs raw ${result.addedP50PercentNoTimeout.toFixed(1)} %, SDK defaults vs raw ${result.addedP50Percent.toFixed(1)} %`);
  console.log(`${jobs} calls waiting in one queue: ${result.queuedBytesPerJob.toFixed(0)} bytes each; aborting all settled in ${result.abortAllMs.toFixed(1)} ms`);
}
