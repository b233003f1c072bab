import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { v } from "@beckon/protocol";
import { tempDir } from "@beckon/test-support";
import { c, ConfigError, configSpec, loadConfig, outboundSection, parseDuration, parseSize, rateLimitSetting } from "./config.js";

const spec = configSpec({
  server_name: v.string({ minLength: 1 }),
  public_base_url: c.default(c.url(), "http://127.0.0.1:8090"),
  listen: c.default(c.listen(), "127.0.0.1:8090"),
  database_url: c.default(v.string(), "sqlite:./data.db"),
  smtp_url: v.optional(c.url({ schemes: ["smtp", "smtps"] })),
  homeservers: c.default(c.baseUrlMap(), {}),
  identity_servers: { map: c.default(c.baseUrlMap(), {}), only_mapped: c.default(c.boolean(), "false") },
  outbound: outboundSection,
  rate_limits: { enabled: c.default(c.boolean(), "true"), store_invite: rateLimitSetting({ perSecond: 100, burst: 200 }) },
  invites: { lifetime: c.default(c.duration(), "30d"), dedupe_window: c.default(c.duration(), "10m") },
});

function withFile(text: string): { file: string; cleanup: () => void } {
  const dir = tempDir("beckon-config-");
  const file = join(dir.path, "config.yaml");
  writeFileSync(file, text);
  return { file, cleanup: dir.cleanup };
}

test("parseDuration and parseSize", () => {
  assert.equal(parseDuration("30d"), 30 * 86_400_000);
  assert.equal(parseDuration("10m"), 600_000);
  assert.equal(parseDuration("24h"), 86_400_000);
  assert.equal(parseDuration("1500ms"), 1500);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("2.5s"), 2500);
  assert.equal(parseDuration("250"), 250);
  assert.equal(parseDuration(42), 42);
  for (const bad of ["", "10x", "m", "-5s", "10 m x", "1d2"]) assert.throws(() => parseDuration(bad), RangeError, bad);
  assert.equal(parseSize("1MiB"), 1024 * 1024);
  assert.equal(parseSize("50k"), 50 * 1024);
  assert.equal(parseSize("2 MB"), 2 * 1024 * 1024);
  assert.equal(parseSize("512"), 512);
  assert.equal(parseSize(7), 7);
  for (const bad of ["", "1TB", "k", "-1"]) assert.throws(() => parseSize(bad), RangeError, bad);
});

test("loads YAML with defaults and freezes the result", () => {
  const f = withFile(`
server_name: localhost:8090
listen: "[::1]:9000"
smtp_url: smtp://127.0.0.1:2525
homeservers:
  localhost:8008: http://127.0.0.1:8008/
invites:
  lifetime: 7d
rate_limits:
  store_invite:
    per_second: 5
`);
  try {
    const cfg = loadConfig(spec, { file: f.file, env: {}, envPrefix: "BECKON_IS_" });
    assert.equal(cfg.server_name, "localhost:8090");
    assert.deepEqual(cfg.listen, { host: "::1", port: 9000 });
    assert.equal(cfg.smtp_url, "smtp://127.0.0.1:2525");
    assert.deepEqual(cfg.homeservers, { "localhost:8008": "http://127.0.0.1:8008" });
    assert.equal(cfg.invites.lifetime, 7 * 86_400_000);
    assert.equal(cfg.invites.dedupe_window, 600_000);
    assert.equal(cfg.outbound.allow_private, false);
    assert.equal(cfg.outbound.timeout, 10_000);
    assert.equal(cfg.outbound.max_response_size, 1024 * 1024);
    assert.deepEqual(cfg.rate_limits, { enabled: true, store_invite: { per_second: 5, burst: 200 } });
    assert.equal(cfg.identity_servers.only_mapped, false);
    assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.invites) && Object.isFrozen(cfg.homeservers));
    assert.throws(() => {
      (cfg as { server_name: string }).server_name = "x";
    }, TypeError);
  } finally {
    f.cleanup();
  }
});

test("env overrides (nested with __) and programmatic overrides, in that order", () => {
  const f = withFile("server_name: from-file\nrate_limits:\n  enabled: true\n");
  try {
    const cfg = loadConfig(spec, {
      file: f.file,
      envPrefix: "BECKON_HS_",
      env: {
        BECKON_HS_SERVER_NAME: "from-env",
        BECKON_HS_RATE_LIMITS__ENABLED: "false",
        BECKON_HS_RATE_LIMITS__STORE_INVITE__BURST: "7",
        BECKON_HS_OUTBOUND__ALLOW_PRIVATE: "true",
        BECKON_HS_HOMESERVERS: '{"localhost:8008": "http://127.0.0.1:8008"}',
        BECKON_HS_LISTEN: "8010",
        BECKON_HS_CONFIG: "/ignored/path.yaml",
        BECKON_IS_SERVER_NAME: "other prefix, ignored",
        PATH: "/usr/bin",
      },
      overrides: { listen: "127.0.0.1:9999", invites: { lifetime: "1h" } },
    });
    assert.equal(cfg.server_name, "from-env");
    assert.equal(cfg.rate_limits.enabled, false);
    assert.equal(cfg.rate_limits.store_invite.burst, 7);
    assert.equal(cfg.outbound.allow_private, true);
    assert.deepEqual(cfg.homeservers, { "localhost:8008": "http://127.0.0.1:8008" });
    assert.deepEqual(cfg.listen, { host: "127.0.0.1", port: 9999 });
    assert.equal(cfg.invites.lifetime, 3_600_000);
  } finally {
    f.cleanup();
  }
});

test("a string that looks like YAML stays a string where a string is wanted", () => {
  const cfg = loadConfig(spec, { envPrefix: "BECKON_IS_", env: { BECKON_IS_SERVER_NAME: "true", BECKON_IS_DATABASE_URL: "a: b" } });
  assert.equal(cfg.server_name, "true");
  assert.equal(cfg.database_url, "a: b");
});

test("reports every problem at once", () => {
  const f = withFile(`
server_nme: typo
public_base_url: ftp://x
listen: "nope"
smtp_url: http://mail
invites:
  lifetime: forever
outbound: 3
homeservers:
  a: not a url
`);
  try {
    let err: unknown;
    try {
      loadConfig(spec, {
        file: f.file,
        envPrefix: "BECKON_IS_",
        env: { BECKON_IS_RATE_LIMITS__ENABLED: "maybe", BECKON_IS_NO_SUCH: "1", BECKON_IS_RATE_LIMITS__STORE_INVITE__PER_SECOND: "0" },
      });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError, String(err));
    const p = err.problems.join("\n");
    for (const expected of [
      "server_nme: unknown setting",
      "server_name: required setting is missing",
      "public_base_url: must use http or https",
      "listen: must be host:port",
      "smtp_url: must use smtp or smtps",
      "invites.lifetime: invalid duration",
      "outbound: must be a mapping",
      "homeservers.a: must be an absolute URL",
      "BECKON_IS_RATE_LIMITS__ENABLED: rate_limits.enabled: must be true or false",
      "BECKON_IS_NO_SUCH: unknown setting no_such",
      "BECKON_IS_RATE_LIMITS__STORE_INVITE__PER_SECOND: rate_limits.store_invite.per_second: must be greater than 0",
    ]) {
      assert.ok(p.includes(expected), `missing "${expected}" in:\n${p}`);
    }
    assert.equal(err.problems.length, 11, p);
    assert.match(err.message, /Invalid configuration/);
  } finally {
    f.cleanup();
  }
});

test("file errors are problems too", () => {
  assert.throws(
    () => loadConfig(spec, { file: "/nonexistent/beckon.yaml", envPrefix: "BECKON_IS_", env: { BECKON_IS_SERVER_NAME: "x" } }),
    (e: unknown) => e instanceof ConfigError && e.problems.length === 1 && /ENOENT/.test(e.problems[0] ?? ""),
  );
  const f = withFile("a: 1\na: 2\n");
  try {
    assert.throws(
      () => loadConfig(spec, { file: f.file, envPrefix: "BECKON_IS_", env: {} }),
      (e: unknown) => e instanceof ConfigError && /not valid YAML/.test(e.problems[0] ?? ""),
    );
  } finally {
    f.cleanup();
  }
});
