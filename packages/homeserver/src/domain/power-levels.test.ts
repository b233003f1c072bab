import { test } from "node:test";
import assert from "node:assert/strict";
import { stateKeyId, type PDU } from "@beckon/protocol";
import { POWER_LEVEL_DEFAULTS, isPowerLevelInteger, powerLevelsFromState, resolvePowerLevels, roomCreator } from "./power-levels.js";

// Defaults from https://spec.matrix.org/v1.18/client-server-api/#mroompower_levels.
test("defaults with no power levels event: creator 100, others 0, state_default 50", () => {
  const pl = resolvePowerLevels(undefined, "@c:hs");
  assert.equal(pl.hasEvent, false);
  assert.equal(pl.userLevel("@c:hs"), 100);
  assert.equal(pl.userLevel("@u:hs"), 0);
  assert.equal(pl.eventLevel("m.room.name", true), 50);
  assert.equal(pl.eventLevel("m.room.message", false), 0);
  assert.deepEqual(
    { ban: pl.ban, kick: pl.kick, redact: pl.redact, invite: pl.invite },
    { ban: 50, kick: 50, redact: 50, invite: 0 },
  );
});

test("defaults for properties missing from an event; the creator gets no special level", () => {
  const pl = resolvePowerLevels({}, "@c:hs");
  assert.equal(pl.hasEvent, true);
  assert.equal(pl.userLevel("@c:hs"), 0);
  assert.equal(pl.stateDefault, POWER_LEVEL_DEFAULTS.state_default);
  assert.equal(pl.eventsDefault, 0);
  assert.equal(pl.usersDefault, 0);
});

test("explicit values, users_default, events overrides; non-integers count as absent", () => {
  const pl = resolvePowerLevels(
    { users: { "@a:hs": 75, "@b:hs": "90" }, users_default: 5, events: { "m.room.name": 10, x: 1.5 }, state_default: 60, events_default: 3, invite: 20 },
    undefined,
  );
  assert.equal(pl.userLevel("@a:hs"), 75);
  assert.equal(pl.userLevel("@b:hs"), 5);
  assert.equal(pl.userLevel("@z:hs"), 5);
  assert.equal(pl.eventLevel("m.room.name", true), 10);
  assert.equal(pl.eventLevel("m.room.name", false), 10);
  assert.equal(pl.eventLevel("m.room.topic", true), 60);
  assert.equal(pl.eventLevel("x", false), 3);
  assert.equal(pl.invite, 20);
  assert.equal(pl.userLevel("__proto__"), 5);
});

test("roomCreator: content.creator in v10, sender in v11", () => {
  const create = { sender: "@s:hs", content: { creator: "@c:hs" } };
  assert.equal(roomCreator(create, "10"), "@c:hs");
  assert.equal(roomCreator(create, "11"), "@s:hs");
  assert.equal(roomCreator({ sender: "@s:hs", content: {} }, "10"), undefined);
  assert.equal(roomCreator(undefined, "11"), undefined);
});

test("powerLevelsFromState", () => {
  const ev = (type: string, sender: string, content: Record<string, unknown>): PDU => ({
    room_id: "!r:hs", sender, type, state_key: "", content, origin_server_ts: 0, depth: 1, prev_events: [], auth_events: [], hashes: { sha256: "" }, signatures: {},
  });
  const s = new Map([[stateKeyId("m.room.create", ""), ev("m.room.create", "@s:hs", { creator: "@c:hs" })]]);
  assert.equal(powerLevelsFromState(s, "10").userLevel("@c:hs"), 100);
  assert.equal(powerLevelsFromState(s, "11").userLevel("@s:hs"), 100);
  s.set(stateKeyId("m.room.power_levels", ""), ev("m.room.power_levels", "@c:hs", { users: { "@u:hs": 42 } }));
  assert.equal(powerLevelsFromState(s, "10").userLevel("@u:hs"), 42);
  assert.equal(powerLevelsFromState(s, "10").userLevel("@c:hs"), 0);
});

test("isPowerLevelInteger", () => {
  for (const v of [0, -5, 100, Number.MAX_SAFE_INTEGER]) assert.equal(isPowerLevelInteger(v), true);
  for (const v of ["1", 1.5, null, undefined, Number.NaN, 2 ** 53, {}]) assert.equal(isPowerLevelInteger(v), false);
});
