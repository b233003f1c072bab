/**
 * The fuzzer checks itself: against a small app built with the server-kit from protocol-style
 * descriptors, it must find planted defects (a crash on one field type, a non-Matrix error
 * body, a success that is not JSON, an app that stops answering) and pass the clean app.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MatrixError, endpoint, v, type EndpointDescriptor } from "@beckon/protocol";
import { createHttpApp, createRouter, HANDLED } from "@beckon/server-kit";
import { InvariantViolation, runFuzz, type FuzzTarget, type KnownDefect } from "./runner.js";

type Bug = "none" | "crash-on-number" | "plain-error" | "html-success" | "wedge";

const echo = endpoint<{ name: string; count?: number }, { ok: boolean }>({
  id: "test.echo",
  api: "client",
  method: "POST",
  path: "/_matrix/client/v3/test/{thing}/echo",
  auth: "user",
  rateLimited: false,
  body: v.object({ name: v.string({ maxLength: 100 }), count: v.optional(v.integer({ min: 0 })) }),
  response: v.object({ ok: v.boolean() }),
});
const list = endpoint<undefined, { items: string[] }, { limit?: number }>({
  id: "test.list",
  api: "client",
  method: "GET",
  path: "/_matrix/client/v3/test/list",
  auth: "none",
  rateLimited: false,
  query: v.object({ limit: v.optional(v.looseInteger({ min: 0, max: 50 })) }),
  response: v.object({ items: v.array(v.string()) }),
});

function buildApp(bug: Bug): FuzzTarget {
  const { app, recordRoute } = createHttpApp();
  const router = createRouter<{ user: string }>(
    { app, recordRoute },
    {
      authenticators: {
        user: async (req) => {
          if (req.headers.authorization !== "Bearer good-token") throw new MatrixError("M_UNKNOWN_TOKEN", "Unknown token", 401);
          return { user: "@a:b" };
        },
      },
    },
  );
  let wedged = false;
  router.add(echo, async ({ body, params, reply }) => {
    // Planted: an allocation sized by the client (passes validation, crashes on large counts).
    if (bug === "crash-on-number" && (body.count ?? 0) > 100_000) throw new RangeError("Invalid array length");
    if (bug === "plain-error" && params.thing?.includes("\u0000")) {
      await reply.code(400).type("text/plain").send("bad thing");
      return HANDLED;
    }
    if (bug === "html-success" && body.name.includes("<")) {
      await reply.code(200).type("text/html").send("<p>ok</p>");
      return HANDLED;
    }
    if (bug === "wedge" && body.name === "") wedged = true;
    return { ok: true };
  });
  router.add(list, async () => {
    if (wedged) throw new Error("wedged");
    return { items: [] };
  });
  return {
    name: `kit app (${bug})`,
    app,
    endpoints: [echo, list] as EndpointDescriptor[],
    examples: { "test.echo": { body: { name: "x", count: 1 }, params: { thing: "abc" } }, "test.list": { query: { limit: "5" } } },
    paramPool: {},
    tokenFor: () => "good-token",
    unknownPrefixes: ["/_matrix/client/v3", ""],
    async knownGood() {
      const r = await app.inject({ method: "GET", url: "/_matrix/client/v3/test/list" });
      if (r.statusCode !== 200) throw new Error(`list: ${r.statusCode}`);
    },
  };
}

/** The kit itself has DEF-1/DEF-2 (framework errors without errcode): tolerated here, tracked elsewhere. */
const KIT_DEFECTS: KnownDefect[] = [{ id: "kit", matches: (_c, v) => v.includes('"code":"FST_') }];

async function failure(bug: Bug, numRuns = 3000): Promise<string | undefined> {
  try {
    await runFuzz(buildApp(bug), { numRuns, seed: 42, knownDefects: KIT_DEFECTS });
    return undefined;
  } catch (e) {
    const cause = (e as { cause?: unknown }).cause;
    assert.ok(cause instanceof InvariantViolation, `unexpected failure: ${String(e)}`);
    return cause.message;
  }
}

test("the clean kit app passes (apart from the kit's own tracked defects)", async () => {
  const stats = await runFuzz(buildApp("none"), { numRuns: 1000, seed: 42, knownDefects: KIT_DEFECTS });
  assert.equal(stats.cases, 1000);
  assert.ok(stats.byStatus.get(200)! > 50, "some cases succeed (the fuzzer gets past auth and validation)");
});

for (const [bug, expected] of [
  ["crash-on-number", /status 500/],
  ["plain-error", /error 400 is not JSON/],
  ["html-success", /success 200 is not JSON/],
  ["wedge", /known-good request failed/],
] as const) {
  test(`a planted defect is found: ${bug}`, async () => {
    const message = await failure(bug);
    assert.ok(message, "the fuzzer passed a broken app");
    assert.match(message, expected);
  });
}
