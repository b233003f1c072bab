import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import * as https from "node:https";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { tempDir } from "@beckon/test-support";
import {
  checkPublicHost,
  createOutboundClient,
  isAllowedByMap,
  isBlockedAddress,
  blockedReason,
  OutboundError,
  type HostResolver,
  type OutboundErrorKind,
} from "./outbound.js";

test("isBlockedAddress: range table", () => {
  const blocked = [
    "0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.254", "127.0.0.1", "127.255.0.1",
    "169.254.169.254", "172.16.0.1", "172.31.255.255", "192.0.0.8", "192.0.2.1", "192.168.1.1", "198.18.0.1", "198.19.255.255",
    "198.51.100.7", "203.0.113.9", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::", "::1", "::0.0.0.1", "0:0:0:0:0:0:0:1", "[::1]", "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:10.1.2.3", "::ffff:169.254.169.254",
    "64:ff9b::808:808", "64:ff9b::8.8.8.8", "64:ff9b:1::1", "100::1", "2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:1ff::1",
    "2001:db8::1", "2001:db8:ffff::1", "2002::1", "2002:7f00:1::", "2002:808:808::1", "fc00::1", "fd12:3456::1", "fe80::1", "fe80::1%eth0",
    "febf::1", "fec0::1", "ff02::1", "ff0e::1", "::ffff:0:8.8.8.8", "fbff::1", "64:ff9b:2::1", "4000::1", "1::1", "3fff:0fff::1",
    "not-an-ip", "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4",
  ];
  const allowed = [
    "1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.1",
    "169.253.255.255", "172.15.255.255", "172.32.0.0", "192.0.1.1", "192.0.3.1", "192.167.255.255", "192.169.0.0", "198.17.255.255",
    "198.20.0.0", "198.51.99.1", "203.0.112.1", "223.255.255.255",
    "::ffff:8.8.8.8", "::ffff:808:808", "2001:200::1", "2001:4860:4860::8888", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e",
    "2003::1", "3ffe::1", "3fff:1000::1", "2c0f:fb50:4003::1",
  ];
  for (const ip of blocked) assert.equal(isBlockedAddress(ip), true, `${ip} must be blocked`);
  for (const ip of allowed) assert.equal(isBlockedAddress(ip), false, `${ip} must be allowed (${blockedReason(ip)})`);
  assert.equal(blockedReason("127.0.0.1"), "loopback");
  assert.equal(blockedReason("::ffff:192.168.0.1"), "private");
  assert.equal(blockedReason("2002::1"), "6to4 (transitional)");
});

// --- loopback servers -------------------------------------------------------------------

interface TestServer {
  port: number;
  url: string;
  connections: number;
  requests: { url: string; method: string; host: string | undefined; body: string; authorization: string | undefined }[];
  close(): Promise<void>;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

const servers: { close(): Promise<void> }[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function startServer(handler: Handler, host = "127.0.0.1", tls?: { key: string; cert: string }): Promise<TestServer> {
  const state: TestServer = {
    port: 0,
    url: "",
    connections: 0,
    requests: [],
    close: async () => {},
  };
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      state.requests.push({ url: req.url ?? "", method: req.method ?? "", host: req.headers.host, body, authorization: req.headers.authorization });
      handler(req, res, body);
    });
  };
  const server = tls ? https.createServer(tls, onRequest) : http.createServer(onRequest);
  server.on(tls ? "secureConnection" : "connection", () => state.connections++);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  state.port = (server.address() as AddressInfo).port;
  state.url = `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${state.port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  servers.push(state);
  return state;
}

const okHandler: Handler = (_req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end('{"ok":true}');
};

async function expectKind(p: Promise<unknown>, kind: OutboundErrorKind, message?: RegExp): Promise<OutboundError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof OutboundError, `expected OutboundError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    if (message) assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected an OutboundError of kind ${kind}`);
}

function fakeResolver(table: Record<string, string[]>): HostResolver & { calls: string[] } {
  const calls: string[] = [];
  const f = async (hostname: string) => {
    calls.push(hostname);
    const list = table[hostname];
    if (!list) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return list.map((address) => ({ address, family: (address.includes(":") ? 6 : 4) as 4 | 6 }));
  };
  return Object.assign(f, { calls });
}

async function ipv6Available(): Promise<boolean> {
  try {
    const s = await startServer(okHandler, "::1");
    await s.close();
    return true;
  } catch {
    return false;
  }
}

test("loopback is refused by default (before connecting), allowed with allowPrivate or for a trusted URL", async () => {
  const s = await startServer(okHandler);
  const guarded = createOutboundClient();
  await expectKind(guarded.request(`${s.url}/x`), "blocked", /loopback/);
  await expectKind(guarded.request(`http://[::ffff:127.0.0.1]:${s.port}/x`), "blocked");
  await expectKind(guarded.request(`http://2130706433:${s.port}/x`), "blocked"); // 127.0.0.1 in decimal
  await expectKind(guarded.request(`file:///etc/passwd`), "blocked");
  assert.equal(s.connections, 0, "nothing reached the server");

  const trustedResponse = await guarded.request(`${s.url}/trusted`, { trusted: true });
  assert.equal(trustedResponse.status, 200);

  const open = createOutboundClient({ allowPrivate: true });
  const r = await open.request(`${s.url}/open?access_token=secret`, { method: "POST", body: '{"a":1}', headers: { "Content-Type": "application/json" } });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json(), { ok: true });
  assert.equal(r.headers["content-type"], "application/json");
  assert.equal(s.requests.at(-1)?.body, '{"a":1}');
  assert.equal(s.requests.at(-1)?.method, "POST");
  guarded.close();
  open.close();

  if (await ipv6Available()) {
    const s6 = await startServer(okHandler, "::1");
    const c = createOutboundClient();
    await expectKind(c.request(`${s6.url}/`), "blocked");
    assert.equal((await c.request(`${s6.url}/`, { trusted: true })).status, 200);
    c.close();
  } else {
    console.log("# IPv6 loopback unavailable: skipping the ::1 part");
  }
});

test("host names: every resolved address is checked, and the checked address is the one used", async () => {
  const s = await startServer(okHandler);
  const resolve = fakeResolver({ "evil.test": ["127.0.0.1"], "mixed.test": ["10.0.0.5", "169.254.169.254", "::1"], "svc.test": ["127.0.0.1"] });
  const guarded = createOutboundClient({ resolve });
  await expectKind(guarded.request(`http://evil.test:${s.port}/`), "blocked", /evil\.test/);
  await expectKind(guarded.request(`http://mixed.test:${s.port}/`), "blocked");
  await expectKind(guarded.request(`http://nowhere.test:${s.port}/`), "network", /ENOTFOUND/);
  assert.equal(s.connections, 0);

  const open = createOutboundClient({ allowPrivate: true, resolve });
  resolve.calls.length = 0;
  const r = await open.request(`http://svc.test:${s.port}/hello`);
  assert.equal(r.status, 200);
  assert.deepEqual(resolve.calls, ["svc.test"], "resolved exactly once");
  assert.equal(s.requests.at(-1)?.host, `svc.test:${s.port}`, "Host header keeps the name");
  guarded.close();
  open.close();
});

test("timeouts against a hanging loopback server", async () => {
  const s = await startServer(() => {
    /* never answers */
  });
  const c = createOutboundClient({ allowPrivate: true, timeoutMs: 10_000 });
  const started = Date.now();
  await expectKind(c.request(`${s.url}/hang`, { timeoutMs: 200 }), "timeout");
  assert.ok(Date.now() - started < 2000);

  const controller = new AbortController();
  const p = c.request(`${s.url}/hang2`, { signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  await expectKind(p, "network", /aborted/);
  c.close();
});

test("connect timeout: a resolver that never answers counts against it", async () => {
  const c = createOutboundClient({ allowPrivate: true, connectTimeoutMs: 100, resolve: () => new Promise(() => {}) });
  const started = Date.now();
  await expectKind(c.request("http://slow-dns.test/"), "timeout", /no connection within 100 ms/);
  assert.ok(Date.now() - started < 2000);
  c.close();
});

test("isAllowedByMap and checkPublicHost (no connections)", async () => {
  const map = { "localhost:8090": "http://127.0.0.1:8090", "is.test": "https://is.test/prefix/" };
  assert.equal(isAllowedByMap("http://127.0.0.1:8090/_matrix/identity/v2/pubkey/isvalid?public_key=x", map), true);
  assert.equal(isAllowedByMap("http://127.0.0.1:8091/x", map), false);
  assert.equal(isAllowedByMap("https://127.0.0.1:8090/x", map), false);
  assert.equal(isAllowedByMap("https://is.test/prefix/x", map), true);
  assert.equal(isAllowedByMap("https://is.test/prefix", map), true);
  assert.equal(isAllowedByMap("https://is.test/prefixed", map), false);
  assert.equal(isAllowedByMap("https://is.test/other", map), false);
  assert.equal(isAllowedByMap("http://user@127.0.0.1:8090/x", map), false);
  assert.equal(isAllowedByMap("not a url", map), false);
  assert.equal(isAllowedByMap("http://127.0.0.1:8090/x", ["http://127.0.0.1:8090"]), true);

  const resolve = fakeResolver({ "public.test": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"], "sneaky.test": ["93.184.215.14", "10.0.0.1"] });
  assert.deepEqual(await checkPublicHost("public.test", resolve), { ok: true, addresses: ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"] });
  assert.equal((await checkPublicHost("sneaky.test", resolve)).ok, false);
  assert.equal((await checkPublicHost("missing.test", resolve)).ok, false);
  assert.equal((await checkPublicHost("127.0.0.1", resolve)).ok, false);
  assert.equal((await checkPublicHost("[::ffff:10.0.0.1]", resolve)).ok, false);
  assert.deepEqual(await checkPublicHost("8.8.8.8", resolve), { ok: true, addresses: ["8.8.8.8"] });
});

test("response size cap: declared and streamed bodies", async () => {
  const s = await startServer((req, res) => {
    if (req.url === "/declared") {
      res.writeHead(200, { "content-length": "5000" });
      res.end("x".repeat(5000));
    } else if (req.url === "/stream") {
      res.writeHead(200); // chunked, no length
      let sent = 0;
      const tick = () => {
        if (res.destroyed || sent > 10 * 1024 * 1024) return res.end();
        sent += 64 * 1024;
        res.write("y".repeat(64 * 1024), () => setImmediate(tick));
      };
      tick();
    } else {
      res.end("small");
    }
  });
  const c = createOutboundClient({ allowPrivate: true, maxResponseBytes: 1000 });
  await expectKind(c.request(`${s.url}/declared`), "too_large");
  const big = createOutboundClient({ allowPrivate: true, maxResponseBytes: 100_000 });
  await expectKind(big.request(`${s.url}/stream`), "too_large");
  assert.equal((await c.request(`${s.url}/small`)).text, "small");
  assert.equal((await c.request(`${s.url}/declared`, { maxResponseBytes: 10_000 })).text.length, 5000);
  c.close();
  big.close();
});

test("redirects: followed at most 3 times, re-checked, credentials not forwarded", async () => {
  const target = await startServer(okHandler);
  const s = await startServer((req, res) => {
    const m = /^\/hop\/(\d+)$/.exec(req.url ?? "");
    if (m) {
      const n = Number(m[1]);
      res.writeHead(302, { location: n > 0 ? `/hop/${n - 1}` : "/done" });
      return res.end();
    }
    if (req.url === "/to-blocked") {
      res.writeHead(307, { location: `http://localhost:${target.port}/secret` });
      return res.end();
    }
    if (req.url === "/to-other") {
      res.writeHead(307, { location: `${target.url}/landed` });
      return res.end();
    }
    if (req.url === "/see-other") {
      res.writeHead(303, { location: "/done" });
      return res.end();
    }
    if (req.url === "/to-file") {
      res.writeHead(302, { location: "file:///etc/passwd" });
      return res.end();
    }
    okHandler(req, res, "");
  });
  const resolve = fakeResolver({ localhost: ["127.0.0.1"] });
  const open = createOutboundClient({ allowPrivate: true, resolve });
  let r = await open.request(`${s.url}/hop/2`); // hop/2 → hop/1 → hop/0 → done: 3 redirects
  assert.equal(r.status, 200);
  assert.equal(r.url, `${s.url}/done`);
  await expectKind(open.request(`${s.url}/hop/3`), "network", /redirects/);
  r = await open.request(`${s.url}/hop/0`, { followRedirects: false });
  assert.equal(r.status, 302);
  r = await open.request(`${s.url}/see-other`, { method: "POST", body: "{}" });
  assert.equal(r.status, 200);
  assert.equal(s.requests.at(-1)?.method, "GET");
  r = await open.request(`${s.url}/to-other`, { headers: { authorization: "Bearer t" } });
  assert.equal(r.status, 200);
  assert.equal(target.requests.at(-1)?.url, "/landed");
  assert.equal(target.requests.at(-1)?.authorization, undefined, "no credentials to another origin");
  await expectKind(open.request(`${s.url}/to-file`), "blocked", /scheme/);

  // A trusted (mapped) URL may be loopback; where it redirects to is checked again.
  const guarded = createOutboundClient({ resolve });
  const before = target.connections;
  await expectKind(guarded.request(`${s.url}/to-blocked`, { trusted: true }), "blocked");
  await expectKind(guarded.request(`${s.url}/to-other`, { trusted: true }), "blocked");
  assert.equal(target.connections, before, "the blocked target was never contacted");
  assert.equal((await guarded.request(`${s.url}/hop/1`, { trusted: true })).status, 200, "same-origin redirects keep trust");
  open.close();
  guarded.close();
});

test("HTTPS: certificates are verified unless insecureSkipTlsVerify", async (t) => {
  let openssl = true;
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
  } catch {
    openssl = false;
  }
  if (!openssl) {
    t.skip("openssl CLI not found: cannot create a self-signed certificate");
    return;
  }
  const dir = tempDir("beckon-tls-");
  try {
    const key = join(dir.path, "key.pem");
    const cert = join(dir.path, "cert.pem");
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
      { stdio: "ignore" },
    );
    const s = await startServer(okHandler, "127.0.0.1", { key: readFileSync(key, "utf8"), cert: readFileSync(cert, "utf8") });
    const verified = createOutboundClient({ allowPrivate: true });
    await expectKind(verified.request(`${s.url}/`), "tls", /self[- ]signed/i);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on("warning", onWarning);
    const insecure = createOutboundClient({ allowPrivate: true, insecureSkipTlsVerify: true });
    const r = await insecure.request(`${s.url}/`);
    assert.equal(r.status, 200);
    await new Promise((resolve) => setImmediate(resolve));
    process.removeListener("warning", onWarning);
    assert.ok(warnings.some((w) => /NOT verified/.test(w)), "a loud warning was emitted");
    verified.close();
    insecure.close();

    // With the certificate trusted as a CA, verification passes for the names it carries
    // and fails for any other; connectTo (SRV-style) keeps the URL's name for the check.
    const pem = readFileSync(cert, "utf8");
    const resolve = fakeResolver({ localhost: ["127.0.0.1"], "other.test": ["127.0.0.1"] });
    const withCa = createOutboundClient({ allowPrivate: true, ca: pem, resolve });
    assert.equal((await withCa.request(`https://localhost:${s.port}/`)).status, 200);
    assert.equal((await withCa.request(`${s.url}/`)).status, 200, "IP SAN");
    await expectKind(withCa.request(`https://other.test:${s.port}/`), "tls", /altnames|not in the cert/i);
    const viaTarget = await withCa.request("https://localhost/x", { connectTo: { host: "127.0.0.1", port: s.port } });
    assert.equal(viaTarget.status, 200);
    assert.equal(s.requests.at(-1)?.host, "localhost");
    await expectKind(withCa.request("https://other.test/x", { connectTo: { host: "127.0.0.1", port: s.port } }), "tls");
    withCa.close();
  } finally {
    dir.cleanup();
  }
});
