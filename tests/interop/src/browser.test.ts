/**
 * A real browser (headless Debian Chromium through playwright-core) on `beckon up`'s mail
 * catcher: carol's validation mail is listed, clicking its link opens the identity server's
 * submitToken page, which says the address is validated — and the session is. Screenshots go
 * to test-results/ (BECKON_UPDATE_DOCS=1 also refreshes docs/*.png for the README).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir, waitFor } from "@beckon/test-support";
import { chromium, type BrowserContext } from "playwright-core";
import { startUp, type UpStack } from "./stack.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const RESULTS = join(ROOT, "test-results");

function chromiumPath(): string | undefined {
  try {
    return execFileSync("sh", ["-c", "command -v chromium || command -v chromium-browser"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const executablePath = chromiumPath();
const skip = executablePath ? undefined : "chromium is not installed (.ci/run installs it)";
if (skip) console.log(`browser test skipped: ${skip}`);

async function json(method: string, url: string, token?: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(url, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), "content-type": "application/json" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(15_000),
  });
  const out = (await r.json()) as Record<string, unknown>;
  if (!r.ok) throw new Error(`${method} ${url} → ${r.status} ${JSON.stringify(out)}`);
  return out;
}

describe("headless Chromium: mail catcher → validation link → success page", { skip, timeout: 120_000 }, () => {
  let stack: UpStack;
  let context: BrowserContext | undefined;
  const profile = tempDir("beckon-chromium-");

  before(async () => {
    stack = await startUp({ catcher: true });
  });
  after(async () => {
    await context?.close().catch(() => {});
    await stack?.close();
    profile.cleanup();
  });

  it("carol clicks the link in her validation mail and the session is validated", async () => {
    const reg = await json("POST", `${stack.hsUrl}/_matrix/client/v3/register`, undefined, {
      username: `carol${Date.now().toString(36)}`,
      password: "correct horse battery",
      auth: { type: "m.login.dummy" },
    });
    const openId = await json("POST", `${stack.hsUrl}/_matrix/client/v3/user/${encodeURIComponent(String(reg.user_id))}/openid/request_token`, String(reg.access_token), {});
    const isToken = String((await json("POST", `${stack.isUrl}/_matrix/identity/v2/account/register`, undefined, openId)).token);
    const clientSecret = `browser${Date.now().toString(36)}`;
    const { sid } = await json("POST", `${stack.isUrl}/_matrix/identity/v2/validate/email/requestToken`, isToken, {
      client_secret: clientSecret,
      email: "carol@example.org",
      send_attempt: 1,
    });
    await waitFor(async () => ((await json("GET", `${stack.mailUiUrl!}/api/mails`)).mails as unknown[]).length > 0, { timeoutMs: 15_000, what: "the mail in the catcher" });

    mkdirSync(RESULTS, { recursive: true });
    context = await chromium.launchPersistentContext(profile.path, {
      executablePath: executablePath!,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1000, height: 800 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(stack.mailUiUrl!, { timeout: 15_000 });
    assert.match(await page.title(), /mail catcher/i);
    assert.ok(await page.getByText("carol@example.org").first().isVisible());
    await page.screenshot({ path: join(RESULTS, "mail-catcher.png"), fullPage: true });
    const link = page.locator('pre.text a[href*="submitToken"]').first();
    assert.ok(await link.isVisible(), "the validation link is clickable on the page");
    await Promise.all([page.waitForURL(/submitToken/, { timeout: 15_000 }), link.click()]);
    const text = await page.locator("body").innerText();
    assert.match(text, /valid|success|verified|confirmed/i, `the page says it worked: ${text.slice(0, 300)}`);
    await page.screenshot({ path: join(RESULTS, "validation-page.png"), fullPage: true });
    const validated = await json(
      "GET",
      `${stack.isUrl}/_matrix/identity/v2/3pid/getValidated3pid?sid=${encodeURIComponent(String(sid))}&client_secret=${encodeURIComponent(clientSecret)}`,
      isToken,
    );
    assert.equal(validated.address, "carol@example.org");
    assert.equal(validated.medium, "email");
    if (process.env.BECKON_UPDATE_DOCS === "1") {
      mkdirSync(join(ROOT, "docs"), { recursive: true });
      copyFileSync(join(RESULTS, "mail-catcher.png"), join(ROOT, "docs", "mail-catcher.png"));
      copyFileSync(join(RESULTS, "validation-page.png"), join(ROOT, "docs", "validation-page.png"));
    }
  });
});
