import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { FakeClock } from "./clock.js";
import { createServerResolver, type SrvRecord, type WellKnownFetcher } from "./discovery.js";
import { createOutboundClient, OutboundError, type OutboundClient, type OutboundRequestOptions } from "./outbound.js";

// One loopback server plays every ".well-known" host: GET /<host>/.well-known/matrix/server.
const wellKnown = new Map<string, { status: number; body: string; cacheControl?: string }>();
const hits: string[] = [];
const server = http.createServer((req, res) => {
  hits.push(req.url ?? "");
  if (req.url === "/api/ping") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ host: req.headers.host }));
    return;
  }
  const host = (req.url ?? "").split("/")[1] ?? "";
  const entry = wellKnown.get(host);
  if (!entry) {
    res.writeHead(404);
    res.end("{}");
    return;
  }
  res.writeHead(entry.status, entry.cacheControl ? { "cache-control": entry.cacheControl } : {});
  res.end(entry.body);
});
const ready = new Promise<string>((resolve) => server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
const loopbackClient = createOutboundClient({ allowPrivate: true });
after(() => {
  loopbackClient.close();
  server.closeAllConnections();
  server.close();
});

/** Sends `https://<host>/.well-known/matrix/server` to the loopback server instead (no real DNS). */
async function loopbackFetcher(): Promise<WellKnownFetcher & { urls: string[] }> {
  const base = await ready;
  const urls: string[] = [];
  const f: WellKnownFetcher = (url) => {
    urls.push(url);
    const u = new URL(url);
    return loopbackClient.request(`${base}/${u.host}${u.pathname}`, { maxResponseBytes: 50 * 1024 });
  };
  return Object.assign(f, { urls });
}

function fakeSrv(table: Record<string, SrvRecord[]>): ((name: string) => Promise<SrvRecord[]>) & { names: string[] } {
  const names: string[] = [];
  const f = async (name: string) => {
    names.push(name);
    return table[name] ?? [];
  };
  return Object.assign(f, { names });
}

/** An outbound client that must not be used (discovery of these names needs no network). */
const noNetwork: OutboundClient = {
  allowPrivate: false,
  close() {},
  request: () => Promise.reject(new Error("no network expected")),
};

test("explicit map first, used as configured and trusted", async () => {
  const base = await ready;
  const guarded = createOutboundClient(); // loopback refused unless trusted
  const servers = createServerResolver({ outbound: guarded, map: { "localhost:8008": `${base}/`, "hs.test": base } });
  assert.equal(await servers.resolve("localhost:8008"), base);
  const r = await servers.resolveServer("hs.test");
  assert.equal(r.via, "map");
  assert.equal(r.trusted, true);
  const res = await servers.request("localhost:8008", "/api/ping");
  assert.equal(res.status, 200);
  assert.deepEqual(res.json(), { host: new URL(base).host });
  // A name that is not in the map is not trusted: loopback stays refused.
  const untrusted = createServerResolver({ outbound: guarded, fetchWellKnown: await loopbackFetcher(), resolveSrv: fakeSrv({}) });
  await assert.rejects(untrusted.request("127.0.0.1:1", "/api/ping"), (e: unknown) => e instanceof OutboundError && e.kind === "blocked");
  guarded.close();
});

test("IP literals and explicit ports need no lookups", async () => {
  const srv = fakeSrv({});
  const fetcher: WellKnownFetcher = () => Promise.reject(new Error("no .well-known expected"));
  const servers = createServerResolver({ outbound: noNetwork, resolveSrv: srv, fetchWellKnown: fetcher });
  assert.equal(await servers.resolve("192.0.2.10"), "https://192.0.2.10:8448");
  assert.equal(await servers.resolve("192.0.2.10:8000"), "https://192.0.2.10:8000");
  assert.equal(await servers.resolve("[2001:db8::1]"), "https://[2001:db8::1]:8448");
  const v6 = await servers.resolveServer("[2001:db8::1]:9000");
  assert.deepEqual(v6, { serverName: "[2001:db8::1]:9000", baseUrl: "https://[2001:db8::1]:9000", hostHeader: "[2001:db8::1]:9000", trusted: false, via: "ip-literal" });
  const named = await servers.resolveServer("matrix.example.test:8443");
  assert.equal(named.baseUrl, "https://matrix.example.test:8443");
  assert.equal(named.hostHeader, "matrix.example.test:8443");
  assert.equal(named.via, "explicit-port");
  assert.deepEqual(srv.names, []);
  await assert.rejects(servers.resolve("bad name!"), (e: unknown) => e instanceof OutboundError && e.kind === "blocked");
});

test(".well-known delegation, honouring Cache-Control (capped at 48 h)", async () => {
  const clock = new FakeClock();
  const fetcher = await loopbackFetcher();
  const srv = fakeSrv({ "_matrix-fed._tcp.fed.example.test": [{ name: "node1.example.test.", port: 8443, priority: 10, weight: 5 }] });
  const servers = createServerResolver({ outbound: noNetwork, clock, fetchWellKnown: fetcher, resolveSrv: srv });

  wellKnown.set("wk-port.test", { status: 200, body: '{"m.server": "matrix.wk-port.test:443"}', cacheControl: "public, max-age=60" });
  let r = await servers.resolveServer("wk-port.test");
  assert.deepEqual(r, { serverName: "wk-port.test", baseUrl: "https://matrix.wk-port.test:443", hostHeader: "matrix.wk-port.test:443", trusted: false, via: "well-known" });
  assert.deepEqual(fetcher.urls, ["https://wk-port.test/.well-known/matrix/server"]);
  await servers.resolve("wk-port.test");
  assert.equal(fetcher.urls.length, 1, "cached");
  clock.advance(61_000);
  wellKnown.set("wk-port.test", { status: 200, body: '{"m.server": "other.wk-port.test:8448"}' });
  assert.equal(await servers.resolve("wk-port.test"), "https://other.wk-port.test:8448");
  assert.equal(fetcher.urls.length, 2, "refetched after max-age");

  // Delegated name without port → SRV on the delegated name; Host and TLS name stay the delegated one.
  wellKnown.set("wk-srv.test", { status: 200, body: '{"m.server": "fed.example.test"}', cacheControl: "max-age=999999999" });
  r = await servers.resolveServer("wk-srv.test");
  assert.equal(r.baseUrl, "https://fed.example.test");
  assert.equal(r.hostHeader, "fed.example.test");
  assert.deepEqual(r.connectTo, { host: "node1.example.test", port: 8443 });
  assert.equal(await servers.resolve("wk-srv.test"), "https://node1.example.test:8443");
  const count = fetcher.urls.length;
  clock.advance(47 * 3_600_000);
  await servers.resolve("wk-srv.test");
  assert.equal(fetcher.urls.length, count, "still cached at 47 h");
  clock.advance(2 * 3_600_000);
  await servers.resolve("wk-srv.test");
  assert.equal(fetcher.urls.length, count + 1, "48 h cap");

  // Delegated IP literal, and delegated name without SRV → 8448.
  wellKnown.set("wk-ip.test", { status: 200, body: '{"m.server": "[2001:db8::5]"}' });
  assert.equal(await servers.resolve("wk-ip.test"), "https://[2001:db8::5]:8448");
  wellKnown.set("wk-plain.test", { status: 200, body: '{"m.server": "plain.wk.test"}' });
  r = await servers.resolveServer("wk-plain.test");
  assert.equal(r.baseUrl, "https://plain.wk.test:8448");
  assert.ok(srv.names.includes("_matrix-fed._tcp.plain.wk.test") && srv.names.includes("_matrix._tcp.plain.wk.test"));
});

test("SRV fallback (_matrix-fed then legacy _matrix), then port 8448; failures cached ≤ 1 h", async () => {
  const clock = new FakeClock();
  const fetcher = await loopbackFetcher();
  const srv = fakeSrv({
    "_matrix-fed._tcp.srv.test": [
      { name: "backup.srv.test", port: 8001, priority: 20, weight: 100 },
      { name: "main.srv.test", port: 8000, priority: 10, weight: 1 },
      { name: "heavy.srv.test", port: 8002, priority: 10, weight: 50 },
    ],
    "_matrix._tcp.legacy.test": [{ name: "old.legacy.test", port: 8009, priority: 0, weight: 0 }],
    "_matrix-fed._tcp.dot.test": [{ name: ".", port: 0, priority: 0, weight: 0 }],
  });
  const servers = createServerResolver({ outbound: noNetwork, clock, fetchWellKnown: fetcher, resolveSrv: srv });
  wellKnown.set("bad-wk.test", { status: 200, body: '{"m.server": "not a name!"}' });

  let r = await servers.resolveServer("srv.test");
  assert.equal(r.via, "srv");
  assert.equal(r.baseUrl, "https://srv.test");
  assert.equal(r.hostHeader, "srv.test");
  assert.deepEqual(r.connectTo, { host: "heavy.srv.test", port: 8002 });
  assert.equal(await servers.resolve("legacy.test"), "https://old.legacy.test:8009");
  assert.equal(await servers.resolve("dot.test"), "https://dot.test:8448");
  r = await servers.resolveServer("plain.test");
  assert.deepEqual(r, { serverName: "plain.test", baseUrl: "https://plain.test:8448", hostHeader: "plain.test", trusted: false, via: "default-port" });
  assert.equal(await servers.resolve("bad-wk.test"), "https://bad-wk.test:8448");

  const before = fetcher.urls.length;
  clock.advance(59 * 60_000);
  await servers.resolve("plain.test");
  assert.equal(fetcher.urls.length, before, "cached for now");
  clock.advance(2 * 60_000);
  await servers.resolve("plain.test");
  assert.equal(fetcher.urls.length, before + 1, "a failed .well-known is retried after an hour");

  // Concurrent resolutions of one name share one discovery.
  servers.clearCache();
  const n = fetcher.urls.length;
  await Promise.all([servers.resolve("srv.test"), servers.resolve("srv.test"), servers.resolve("SRV.test")]);
  assert.equal(fetcher.urls.length, n + 1);
});

test("request() sends Host and connects to the SRV target through the outbound client", async () => {
  const calls: { url: string; options: OutboundRequestOptions | undefined }[] = [];
  const recorder: OutboundClient = {
    allowPrivate: false,
    close() {},
    request: async (url, options) => {
      calls.push({ url, options });
      return { status: 200, headers: {}, text: "{}", url, json: () => ({}) };
    },
  };
  const servers = createServerResolver({
    outbound: recorder,
    fetchWellKnown: async () => ({ status: 404, headers: {}, text: "" }),
    resolveSrv: fakeSrv({ "_matrix-fed._tcp.srv.test": [{ name: "node.srv.test", port: 8443, priority: 0, weight: 0 }] }),
  });
  await servers.request("srv.test", "/_matrix/federation/v1/3pid/onbind", { method: "POST", body: "{}" });
  assert.equal(calls[0]?.url, "https://srv.test/_matrix/federation/v1/3pid/onbind");
  assert.deepEqual(calls[0]?.options?.connectTo, { host: "node.srv.test", port: 8443 });
  assert.equal(calls[0]?.options?.headers?.host, "srv.test");
  assert.equal(calls[0]?.options?.trusted, false);
  assert.equal(calls[0]?.options?.method, "POST");
});
