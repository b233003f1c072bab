import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "@beckon/test-support";
import { decodeBase64 } from "@beckon/protocol";
import { devHomeserverConfig, devIdentityServerConfig, loadOrCreateState, type DevOptions } from "./dev-configs.js";
import { configProblems, loadServerModule, pruneToShape } from "./servers.js";
import { parseUpArgs, UsageError } from "./up.js";
import { sampleHomeserverConfig, sampleIdentityServerConfig } from "./sample-configs.js";
import { generateSigningKey, runGenerateConfig } from "./commands.js";
import { formatLogLine } from "./child.js";

function opts(dir: string, extra: Partial<DevOptions> = {}): DevOptions {
  return { dataDir: dir, homeserverPort: 8008, identityPort: 8090, smtpUrl: "smtp://127.0.0.1:2525", ...extra };
}

test("dev configs map the two servers to each other exactly as DECISIONS says", () => {
  const dir = tempDir();
  try {
    const { state, created } = loadOrCreateState(dir.path, 8008, 8090);
    assert.equal(created, true);
    const hs = devHomeserverConfig(opts(dir.path), state);
    const is = devIdentityServerConfig(opts(dir.path), state);
    assert.equal(hs.server_name, "localhost:8008");
    assert.equal(hs.listen, "127.0.0.1:8008");
    assert.deepEqual((hs.identity_servers as { map: unknown }).map, { "localhost:8090": "http://127.0.0.1:8090", "127.0.0.1:8090": "http://127.0.0.1:8090" });
    assert.deepEqual(hs.registration, { enabled: true });
    assert.equal(is.server_name, "localhost:8090");
    assert.deepEqual(is.other_names, ["127.0.0.1:8090"]);
    assert.equal(is.public_base_url, "http://127.0.0.1:8090");
    assert.deepEqual(is.homeservers, { "localhost:8008": "http://127.0.0.1:8008" });
    assert.equal(is.smtp_url, "smtp://127.0.0.1:2525");
    assert.match(String(hs.database_url), /^sqlite:.*homeserver\.db$/);
  } finally {
    dir.cleanup();
  }
});

test("the homeserver's name is kept from the first start; other ports are mapped to it", () => {
  const dir = tempDir();
  try {
    loadOrCreateState(dir.path, 8008, 8090);
    const { state, created } = loadOrCreateState(dir.path, 9008, 9090);
    assert.equal(created, false);
    assert.equal(state.homeserver_server_name, "localhost:8008");
    const o = opts(dir.path, { homeserverPort: 9008, identityPort: 9090 });
    const hs = devHomeserverConfig(o, state);
    const is = devIdentityServerConfig(o, state);
    assert.equal(hs.server_name, "localhost:8008");
    assert.equal(hs.listen, "127.0.0.1:9008");
    assert.deepEqual(is.homeservers, { "localhost:8008": "http://127.0.0.1:9008" });
    // The old identity-server name still resolves (room state may name it), to the new port.
    assert.deepEqual((hs.identity_servers as { map: unknown }).map, {
      "localhost:8090": "http://127.0.0.1:9090",
      "localhost:9090": "http://127.0.0.1:9090",
      "127.0.0.1:9090": "http://127.0.0.1:9090",
    });
    assert.deepEqual(JSON.parse(readFileSync(join(dir.path, "beckon-state.json"), "utf8")).identity_server_names, ["localhost:8090", "localhost:9090"]);
  } finally {
    dir.cleanup();
  }
});

test("PostgreSQL: both servers on one database, separate schemas; extras from beckon.yaml merge in", () => {
  const dir = tempDir();
  try {
    const { state } = loadOrCreateState(dir.path, 8008, 8090);
    const o = opts(dir.path, { databaseUrl: "postgres://u@127.0.0.1/db", identityServerExtra: { rate_limits: { enabled: false } } });
    const hs = devHomeserverConfig(o, state);
    const is = devIdentityServerConfig(o, state);
    assert.equal(hs.database_schema, "beckon_hs");
    assert.equal(is.database_schema, "beckon_is");
    assert.equal(hs.database_url, "postgres://u@127.0.0.1/db?options=-c+search_path%3Dbeckon_hs");
    assert.equal(is.database_url, "postgres://u@127.0.0.1/db?options=-c+search_path%3Dbeckon_is");
    const rl = is.rate_limits as Record<string, unknown>;
    assert.equal(rl.enabled, false);
    assert.ok(rl.store_invite_sender, "the rest of the section is kept");
  } finally {
    dir.cleanup();
  }
});

test("the generated configs are valid for the servers that exist", async (t) => {
  const dir = tempDir();
  try {
    const { state } = loadOrCreateState(dir.path, 8008, 8090);
    for (const kind of ["homeserver", "identity-server"] as const) {
      const mod = await loadServerModule(kind);
      if (!mod.loadConfig || !mod.shape) {
        t.diagnostic(`${kind} not checked: ${mod.missing ?? "no config loader exported"}`);
        continue;
      }
      const config = kind === "homeserver" ? devHomeserverConfig(opts(dir.path), state) : devIdentityServerConfig(opts(dir.path), state);
      const pruned = pruneToShape(config, mod.shape);
      assert.deepEqual(pruned.dropped, [], `${kind} knows every generated setting`);
      const file = join(dir.path, `${kind}.json`);
      writeFileSync(file, JSON.stringify(config));
      try {
        mod.loadConfig({ file, env: {} });
      } catch (e) {
        assert.fail(`${kind} refuses the generated config: ${configProblems(e).join("; ")}`);
      }
      const sample = join(dir.path, `${kind}-sample.yaml`);
      writeFileSync(sample, kind === "homeserver" ? sampleHomeserverConfig() : sampleIdentityServerConfig());
      try {
        mod.loadConfig({ file: sample, env: {} });
      } catch (e) {
        assert.fail(`${kind} refuses the generate-config sample: ${configProblems(e).join("; ")}`);
      }
    }
  } finally {
    dir.cleanup();
  }
});

test("pruneToShape drops unknown settings, section by section", () => {
  const shape = { a: () => 1, sec: { b: () => 2 } };
  const r = pruneToShape({ a: 1, x: 2, sec: { b: 3, y: 4 } }, shape);
  assert.deepEqual(r.config, { a: 1, sec: { b: 3 } });
  assert.deepEqual(r.dropped, ["x", "sec.y"]);
});

test("beckon up flags: defaults, beckon.yaml under flags, clear errors", () => {
  const dir = tempDir();
  try {
    const d = parseUpArgs([], dir.path);
    assert.ok(d !== "help");
    assert.equal(d.homeserverPort, 8008);
    assert.equal(d.identityPort, 8090);
    assert.equal(d.mailPort, 2525);
    assert.equal(d.mailUiPort, 8025);
    assert.equal(d.dataDir, join(dir.path, ".beckon"));
    writeFileSync(join(dir.path, "beckon.yaml"), "homeserver_port: 9000\nidentity_port: 9001\nidentity_server:\n  log_level: warn\n");
    const f = parseUpArgs(["--config", "beckon.yaml", "--identity-port", "9002"], dir.path);
    assert.ok(f !== "help");
    assert.equal(f.homeserverPort, 9000);
    assert.equal(f.identityPort, 9002);
    assert.deepEqual(f.identityServerExtra, { log_level: "warn" });
    assert.throws(() => parseUpArgs(["--homeserver-port", "http"], dir.path), UsageError);
    assert.throws(() => parseUpArgs(["--smtp-url", "http://x"], dir.path), /smtp:\/\//);
    assert.throws(() => parseUpArgs(["--database-url", "mysql://x"], dir.path), /postgres/);
    assert.throws(() => parseUpArgs(["--bogus"], dir.path), UsageError);
    assert.throws(() => parseUpArgs(["--homeserver-port", "8090"], dir.path), /ports must differ/);
    writeFileSync(join(dir.path, "bad.yaml"), "homserver_port: 1\n");
    assert.throws(() => parseUpArgs(["--config", "bad.yaml"], dir.path), /unknown setting\(s\) homserver_port/);
    assert.equal(parseUpArgs(["--help"], dir.path), "help");
  } finally {
    dir.cleanup();
  }
});

test("generate-config writes both samples and keeps existing files without --force", () => {
  const dir = tempDir();
  const out: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
  try {
    assert.equal(runGenerateConfig(["--out", "conf", "--server-name", "example.com"], io, dir.path), 0);
    assert.match(readFileSync(join(dir.path, "conf", "homeserver.yaml"), "utf8"), /server_name: example\.com/);
    assert.match(readFileSync(join(dir.path, "conf", "identity-server.yaml"), "utf8"), /example\.com: https:\/\/matrix\.example\.com/);
    assert.equal(runGenerateConfig(["--out", "conf"], io, dir.path), 1);
    assert.equal(runGenerateConfig(["--out", "conf", "--force"], io, dir.path), 0);
  } finally {
    dir.cleanup();
  }
});

test("keygen: a Synapse-style version and a 32-byte seed", () => {
  const k = generateSigningKey();
  assert.match(k.keyId, /^ed25519:a_[A-Za-z0-9]{4}$/);
  assert.equal(decodeBase64(k.seed).length, 32);
  assert.equal(decodeBase64(k.publicKey).length, 32);
  assert.notEqual(generateSigningKey().seed, k.seed);
});

test("server log lines: warnings and errors shown, info only when verbose", () => {
  assert.equal(formatLogLine("homeserver", JSON.stringify({ level: 30, msg: "hi" }), false), undefined);
  assert.equal(formatLogLine("homeserver", JSON.stringify({ level: 30, msg: "hi" }), true), "[homeserver] INFO hi");
  assert.equal(formatLogLine("homeserver", JSON.stringify({ level: 50, msg: "boom", err: { message: "x" } }), false), "[homeserver] ERROR boom (x)");
  assert.equal(formatLogLine("identity server", "plain text", false), "[identity server] plain text");
});
