/**
 * The fuzzer covers what the servers serve; this checks that what they serve is everything the
 * protocol declares, so a descriptor that no server wires up is noticed (and not silently skipped).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { allEndpoints } from "@beckon/protocol";
import { startStack } from "./stack.js";
import { servedEndpoints } from "./targets.js";

/** Descriptors only (DECISIONS.md: federation between homeservers is out of scope). */
const NOT_SERVED = ["federation.3pid.exchange_third_party_invite"];

test("every protocol endpoint descriptor is served by the homeserver or the identity server", async () => {
  const stack = await startStack({ logLevel: "error" });
  try {
    const served = new Set([...servedEndpoints(stack.hs.app), ...servedEndpoints(stack.is.app)].map((d) => d.id));
    const missing = allEndpoints.filter((d) => !served.has(d.id)).map((d) => d.id);
    assert.deepEqual(missing.sort(), [...NOT_SERVED].sort());
    console.log(`[fuzz] ${served.size} of ${allEndpoints.length} descriptors served (HS ${servedEndpoints(stack.hs.app).length}, IS ${servedEndpoints(stack.is.app).length})`);
  } finally {
    await stack.close();
  }
});
