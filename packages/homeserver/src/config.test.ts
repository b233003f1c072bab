/** Configuration: YAML + BECKON_HS_* environment, all problems at once; the CLI's config check. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "@beckon/server-kit";
import { tempDir } from "@beckon/test-support";
import { runHomeserverCli } from "./cli.js";
import { loadHomeserverConfig } from "./config.js";
import { call, startTestHomeserver } from "./testing.js";

describe("homeserver config", () => {
  it("reads YAML, applies BECKON_HS_* overrides (nested with __), fills defaults, freezes", () => {
    const dir = tempDir();
    try {
      const file = join(dir.path, "hs.yaml");
      writeFileSync(file, "server_name: localhost:8008\nidentity_servers:\n  map:\n    localhost:8090: http://127.0.0.1:8090\n");
      const c = loadHomeserverConfig({ file, env: { BECKON_HS_RATE_LIMITS__ENABLED: "false", BECKON_HS_LISTEN: "127.0.0.1:9999" } });
      assert.equal(c.server_name, "localhost:8008");
      assert.deepEqual(c.identity_servers.map, { "localhost:8090": "http://127.0.0.1:8090" });
      assert.equal(c.rate_limits.enabled, false);
      assert.deepEqual(c.listen, { host: "127.0.0.1", port: 9999 });
      assert.equal(c.database_url, "sqlite:./homeserver.db");
      assert.equal(c.invites.lifetime, 30 * 86_400_000);
      assert.ok(Object.isFrozen(c));
    } finally {
      dir.cleanup();
    }
  });

  it("reports every problem at once", () => {
    try {
      loadHomeserverConfig({ env: { BECKON_HS_LISTEN: "nope", BECKON_HS_PASSWORDS__SCRYPT_N: "x", BECKON_HS_BOGUS: "1" } });
      assert.fail("should throw");
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.ok(e.problems.length >= 4, e.problems.join("\n"));
      assert.ok(e.problems.some((p) => p.includes("server_name")));
    }
  });

  it("the CLI checks a config and prints its problems (exit 2)", async () => {
    const dir = tempDir();
    try {
      const file = join(dir.path, "bad.yaml");
      writeFileSync(file, "listen: nope\n");
      const err: string[] = [];
      assert.equal(await runHomeserverCli(["--config", file, "--check-config"], { out: () => {}, err: (s) => err.push(s) }), 2);
      assert.match(err.join("\n"), /server_name/);
      const ok = join(dir.path, "ok.yaml");
      writeFileSync(ok, "server_name: localhost:8008\n");
      const out: string[] = [];
      assert.equal(await runHomeserverCli(["--config", ok, "--check-config"], { out: (s) => out.push(s) }), 0);
      assert.equal(await runHomeserverCli(["--nope"], { err: () => {} }), 2);
    } finally {
      dir.cleanup();
    }
  });

  it("bodies over http.body_limit are 413 M_TOO_LARGE", async () => {
    const t = await startTestHomeserver({ overrides: { http: { body_limit: "2k" } } });
    try {
      const r = await call(t.hs, "POST", "/_matrix/client/v3/login", { body: { type: "m.login.password", user: "x", password: "y".repeat(4000) } });
      assert.equal(r.status, 413);
      assert.equal(r.body.errcode, "M_TOO_LARGE");
    } finally {
      await t.close();
    }
  });
});
