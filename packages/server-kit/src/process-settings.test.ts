import { test } from "node:test";
import assert from "node:assert/strict";
import { serverProcessSettings } from "./process-settings.js";

test("server process settings: young generation per server, malloc settings only where the operator set none", () => {
  assert.deepEqual(serverProcessSettings("homeserver", {}).nodeFlags, ["--max-semi-space-size=2"]);
  assert.deepEqual(serverProcessSettings("identity-server", {}).nodeFlags, ["--max-semi-space-size=4"]);
  assert.deepEqual(serverProcessSettings("homeserver", {}).env, { MALLOC_ARENA_MAX: "2", MALLOC_MMAP_THRESHOLD_: "131072" });
  assert.deepEqual(serverProcessSettings("homeserver", { MALLOC_ARENA_MAX: "8" }).env, { MALLOC_MMAP_THRESHOLD_: "131072" });
  assert.deepEqual(serverProcessSettings("identity-server", { MALLOC_ARENA_MAX: "8", MALLOC_MMAP_THRESHOLD_: "0" }).env, {});
});
