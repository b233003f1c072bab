/**
 * `npm run bench -- protocol [--seconds=2] [--json]`: canonical JSON, signJson and
 * verifyJsonSignature for a typical `m.room.member` event on the node:crypto provider, next to
 * raw node:crypto ed25519 sign/verify of the same bytes. Each measurement is bounded in time
 * (`--seconds`, default 2, per function), and compared functions run interleaved.
 * Figures go in bench/RESULTS.md (## protocol).
 */
import * as nodeCrypto from "node:crypto";
import os from "node:os";
import { benchArgs } from "./lib/index.js";
import {
  decodeBase64,
  ED25519_PKCS8_PREFIX,
  ED25519_SPKI_PREFIX,
  concatBytes,
  encodeCanonicalJson,
  nodeCryptoProvider,
  signingBytes,
  signJson,
  signJsonSync,
  verifyJsonSignature,
} from "@beckon/protocol/node";

const args = benchArgs();
const seconds = Number(args.get("seconds") ?? "2");
if (!(seconds > 0 && seconds <= 60)) throw new Error("--seconds must be in (0, 60]");

/** A join event as a room v10 homeserver builds it (PDU format, before signing). */
const memberEvent = {
  auth_events: ["$Ks1pFRZ8ctLS7PGsKWBk_KZXZ6i1x6PLtsmX6TH5hMQ", "$jq1Fj5AN4DO9fJt1K8EN6a9ZZyTqAbbzB6nZcLx6p2s", "$2VwXUcCGeXUmeS6qI2Lr6eH8zeL0iSNAsQv9yPmWkQo"],
  content: {
    avatar_url: "mxc://example.org/SEsfnsuifSDFSSEF",
    displayname: "Alice Margatroid",
    membership: "join",
  },
  depth: 12,
  hashes: { sha256: "K3G0YbJoZ6qE1c9BvRa2qb7kW8DgkpKzfh+3VPo8Ays" },
  origin: "example.org",
  origin_server_ts: 1_700_000_000_000,
  prev_events: ["$Pa1q7bL0gL4fzSz_2LNCuC9xEt0W1k1lq4kZfKxv5UE"],
  room_id: "!jEsUZKDJdhlrceRyVU:example.org",
  sender: "@alice:example.org",
  state_key: "@alice:example.org",
  type: "m.room.member",
  unsigned: { age: 1234 },
};

const seed = decodeBase64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1");
const publicKey = nodeCryptoProvider.ed25519PublicKeySync(seed);
const privateKeyObject = nodeCrypto.createPrivateKey({ key: Buffer.from(concatBytes(ED25519_PKCS8_PREFIX, seed)), format: "der", type: "pkcs8" });
const publicKeyObject = nodeCrypto.createPublicKey({ key: Buffer.from(concatBytes(ED25519_SPKI_PREFIX, publicKey)), format: "der", type: "spki" });
const bytes = signingBytes(memberEvent);

interface Result {
  name: string;
  opsPerSec: number;
  iterations: number;
  ms: number;
  /** ops/s in each round (for ratios between functions measured side by side). */
  perRound: number[];
}

type Fn = () => unknown | Promise<unknown>;

/** How many calls of `fn` take about `ms` (calibration, also the warm-up). */
async function calibrate(fn: Fn, ms: number): Promise<number> {
  let n = 16;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < n; i++) await fn();
    const took = performance.now() - t;
    if (took >= ms / 4) return Math.max(1, Math.round((n * ms) / took));
    n *= 2;
  }
}

/**
 * Measures several functions for `seconds` each, interleaved in 50 ms slices (A, B, C, A, B, C…),
 * so that load from other processes on a shared machine hits them alike; ratios are the median
 * of the per-round ratios.
 */
async function measureInterleaved(fns: [string, Fn][]): Promise<Result[]> {
  const slice = 50;
  const perSlice = [];
  for (const [, fn] of fns) perSlice.push(await calibrate(fn, slice));
  const totals = fns.map(([name]) => ({ name, iterations: 0, ms: 0, perRound: [] as number[] }));
  const rounds = Math.max(1, Math.round((seconds * 1000) / slice));
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < fns.length; k++) {
      const fn = fns[k]![1];
      const n = perSlice[k]!;
      const t = performance.now();
      for (let i = 0; i < n; i++) await fn();
      const took = performance.now() - t;
      totals[k]!.ms += took;
      totals[k]!.iterations += n;
      totals[k]!.perRound.push((n * 1000) / took);
    }
  }
  return totals.map((t) => ({ ...t, opsPerSec: (t.iterations * 1000) / t.ms }));
}

let sink = 0;
const signed = await signJson(memberEvent, "example.org", "ed25519:1", seed, nodeCryptoProvider);
if (!(await verifyJsonSignature(signed, "example.org", "ed25519:1", publicKey, nodeCryptoProvider))) throw new Error("signature does not verify");
const sigBytes = decodeBase64(signed.signatures["example.org"]!["ed25519:1"]!);

const results: Result[] = [
  ...(await measureInterleaved([
    ["encodeCanonicalJson", () => (sink += encodeCanonicalJson(memberEvent).length)],
    ["signingBytes (canonical JSON + UTF-8)", () => (sink += signingBytes(memberEvent).length)],
  ])),
  ...(await measureInterleaved([
    ["raw node:crypto ed25519 sign", () => (sink += nodeCrypto.sign(null, bytes, privateKeyObject).length)],
    ["signJson (node:crypto provider)", async () => (sink += (await signJson(memberEvent, "example.org", "ed25519:1", seed, nodeCryptoProvider)).depth)],
    ["signJsonSync (node:crypto provider)", () => (sink += signJsonSync(memberEvent, "example.org", "ed25519:1", seed, nodeCryptoProvider).depth)],
  ])),
  ...(await measureInterleaved([
    ["raw node:crypto ed25519 verify", () => (sink += nodeCrypto.verify(null, bytes, publicKeyObject, sigBytes) ? 1 : 0)],
    ["verifyJsonSignature (node:crypto provider)", async () => (sink += (await verifyJsonSignature(signed, "example.org", "ed25519:1", publicKey, nodeCryptoProvider)) ? 1 : 0)],
  ])),
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
/** Median over rounds of how much slower `slow` is than `fast`. */
function ratio(fast: string, slow: string): number {
  const a = results.find((r) => r.name.startsWith(fast))!.perRound;
  const b = results.find((r) => r.name.startsWith(slow))!.perRound;
  return median(a.map((x, i) => x / b[i]!));
}
const signRatio = ratio("raw node:crypto ed25519 sign", "signJson ");
const verifyRatio = ratio("raw node:crypto ed25519 verify", "verifyJsonSignature");

if (args.has("json")) {
  const summary = results.map(({ perRound: _p, ...r }) => r);
  console.log(JSON.stringify({ seconds, eventBytes: bytes.length, results: summary, signRatio, verifyRatio }, null, 2));
} else {
  console.log(`protocol benchmark — node ${process.version}, ${os.cpus()[0]?.model ?? "cpu"} ×${os.cpus().length}, ${seconds} s per measurement`);
  console.log(`m.room.member event: ${bytes.length} bytes of canonical JSON (signatures/unsigned stripped)\n`);
  const w = Math.max(...results.map((r) => r.name.length));
  for (const r of results) console.log(`${r.name.padEnd(w)}  ${Math.round(r.opsPerSec).toLocaleString("en-US").padStart(10)} ops/s`);
  console.log(`\nsignJson cost vs raw sign: ${signRatio.toFixed(2)}× (target ≤ 1.5×; median of per-round ratios)`);
  console.log(`verifyJsonSignature cost vs raw verify: ${verifyRatio.toFixed(2)}×`);
}
if (sink === 0.5) console.log(""); // keep results observable
