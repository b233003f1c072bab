/**
 * Browser smoke test: the SDK bundled with esbuild runs in headless Chromium (fetch,
 * AbortSignal, WebCrypto only) and performs a lookup and invites against the loopback test
 * servers. Skips, saying why, when `chromium` is not on PATH (DECISIONS.md).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MatrixClient } from "./api/matrix-client.js";
import { startLoopbackServers, type LoopbackServers } from "./testing/loopback-servers.js";

function findChromium(): string | undefined {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const chromiumPath = findChromium();
if (!chromiumPath) console.log("# browser smoke test skipped: `chromium` is not on PATH (apt-get install -y chromium)");

const PAGE = `<!doctype html><meta charset="utf-8"><title>beckon smoke</title>
<script type="module">
import * as sdk from "/sdk.js";
window.runSmoke = async (cfg) => {
  const alice = new sdk.MatrixClient({ baseUrl: location.origin });
  await alice.register({ username: "browser-alice", password: "pw" });
  const { room_id } = await alice.createRoom({ name: "from the browser" });
  const identity = new sdk.IdentityClient({ baseUrl: cfg.isUrl, transport: alice.transport });
  const known = await sdk.inviteByEmail(alice, room_id, cfg.knownEmail, { identity });
  const unknown = await sdk.inviteByEmail(alice, room_id, "stranger@example.org", { identity });
  const lookup = await identity.lookup([{ medium: "email", address: cfg.knownEmail }, { medium: "email", address: "nobody@example.org" }]);
  const pending = await alice.listPendingThirdPartyInvites(room_id);
  const ctrl = new AbortController();
  const p = alice.syncOnce({ timeout: 5000, since: "999999" }, { signal: ctrl.signal });
  ctrl.abort();
  const aborted = await p.then(() => "resolved", (e) => e.name + ":" + e.kind);
  return { known, unknown, lookup, pending: pending.map((x) => x.displayName), aborted, webCrypto: typeof crypto.subtle };
};
window.ready = true;
</script>`;

describe("browser smoke test (headless Chromium)", { skip: chromiumPath ? false : "chromium is not on PATH" }, () => {
  let s: LoopbackServers;
  let profile: string;
  before(async () => {
    s = await startLoopbackServers();
    const esbuild = await import("esbuild");
    const entry = join(fileURLToPath(new URL(".", import.meta.url)), "index.js");
    const out = await esbuild.build({ entryPoints: [entry], bundle: true, format: "esm", platform: "browser", target: "es2022", write: false, logLevel: "silent" });
    s.files.set("/sdk.js", { contentType: "text/javascript", body: out.outputFiles[0]!.text });
    s.files.set("/index.html", { contentType: "text/html", body: PAGE });
    profile = mkdtempSync(join(tmpdir(), "beckon-chromium-"));
  });
  after(async () => {
    await s?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it("bundles without Node built-ins, looks up and invites from the page", { timeout: 60_000 }, async () => {
    const bob = new MatrixClient({ baseUrl: s.hsUrl });
    await bob.register({ username: "bob", password: "pw" });
    await s.bind("bob@example.org", bob.userId!);
    const { chromium } = await import("playwright-core");
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath!,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      timeout: 30_000,
    });
    try {
      const page = await context.newPage();
      const logs: string[] = [];
      page.on("console", (m) => logs.push(m.text()));
      page.on("pageerror", (e) => logs.push(String(e)));
      await page.goto(`${s.hsUrl}/index.html`);
      await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true, undefined, { timeout: 10_000 });
      const result = await page.evaluate(
        (cfg) => (window as unknown as { runSmoke: (c: unknown) => Promise<unknown> }).runSmoke(cfg),
        { isUrl: s.isUrl, knownEmail: "Bob@Example.org" },
      );
      assert.deepEqual(result, {
        known: { email: "Bob@Example.org", status: "invited", userId: bob.userId },
        unknown: { email: "stranger@example.org", status: "invited-by-3pid" },
        lookup: [bob.userId, undefined],
        pending: ["str...@exa..."],
        aborted: "ConnectionError:aborted",
        webCrypto: "object",
      }, logs.join("\n"));
      assert.equal(s.mails.filter((m) => m.to === "stranger@example.org").length, 1);
    } finally {
      await context.close();
    }
  });
});
