import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { request } from "node:http";
import { FakeClock } from "./clock.js";
import { createHttpApp } from "./http.js";
import { createLifecycle, type SignalProcess } from "./lifecycle.js";

const tick = () => new Promise((r) => setImmediate(r));

test("closers run intake first, then tracked work settles, then resources", async () => {
  const order: string[] = [];
  const life = createLifecycle({ clock: new FakeClock() });
  let finishWork = () => {};
  void life.track(new Promise<void>((r) => (finishWork = r)).then(() => order.push("work done")));
  life.addCloser("db", () => order.push("db"));
  life.addCloser("http", async () => {
    order.push("http");
    await tick();
  }, { phase: "intake" });
  life.addCloser("queue", () => order.push("queue"), { phase: "intake" });
  assert.equal(life.shuttingDown, false);
  const p = life.shutdown("test");
  assert.equal(life.shuttingDown, true);
  assert.equal(life.signal.aborted, true);
  assert.equal(life.shutdown(), p, "one shutdown");
  await tick();
  await tick();
  assert.deepEqual(order, ["http", "queue"]);
  finishWork();
  assert.equal(await p, true);
  assert.deepEqual(order, ["http", "queue", "work done", "db"]);
});

test("a stuck closer or stuck work is cut off by the timeout and reported", async () => {
  const clock = new FakeClock();
  const life = createLifecycle({ clock, timeoutMs: 1000 });
  const closed: string[] = [];
  void life.track(new Promise(() => {}));
  life.addCloser("stuck", () => new Promise(() => {}));
  life.addCloser("failing", () => {
    throw new Error("boom");
  });
  life.addCloser("db", () => closed.push("db"));
  const p = life.shutdown();
  for (let i = 0; i < 10 && closed.length === 0; i++) {
    await tick();
    clock.advance(1000);
  }
  assert.equal(await p, false);
  assert.deepEqual(closed, ["db"], "later closers still run");
});

test("in-flight HTTP requests finish before the server closes", async () => {
  const m = createHttpApp();
  let release = () => {};
  m.app.get("/slow", async () => {
    await new Promise<void>((r) => (release = r));
    return { done: true };
  });
  await m.app.listen({ host: "127.0.0.1", port: 0 });
  const address = m.app.server.address();
  assert.ok(address && typeof address === "object");
  const life = createLifecycle();
  life.addCloser("http", () => m.app.close(), { phase: "intake" });
  const response = new Promise<string>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: address.port, path: "/slow" }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.end();
  });
  while (release.toString() === (() => {}).toString()) await tick();
  const closing = life.shutdown();
  await tick();
  release();
  assert.equal(await response, '{"done":true}');
  assert.equal(await closing, true);
  assert.equal(m.app.server.listening, false);
});

test("signals trigger shutdown and exit; a second signal exits at once", async () => {
  const emitter = new EventEmitter();
  const exits: number[] = [];
  const proc: SignalProcess = {
    once: (s, fn) => emitter.once(s, fn),
    removeListener: (s, fn) => emitter.removeListener(s, fn),
    exit: (code) => void exits.push(code ?? 0),
  };
  const life = createLifecycle({ process: proc, clock: new FakeClock() });
  let release = () => {};
  life.addCloser("slow", () => new Promise<void>((r) => (release = r)));
  life.installSignalHandlers();
  emitter.emit("SIGTERM");
  await tick();
  assert.equal(life.shuttingDown, true);
  emitter.emit("SIGTERM");
  assert.deepEqual(exits, [130]);
  release();
  await life.shutdown();
  await tick();
  assert.deepEqual(exits, [130, 0]);
  assert.equal(emitter.listenerCount("SIGINT") + emitter.listenerCount("SIGTERM"), 0, "handlers removed");

  const other = createLifecycle({ process: proc });
  const uninstall = other.installSignalHandlers();
  assert.equal(emitter.listenerCount("SIGINT"), 1);
  uninstall();
  assert.equal(emitter.listenerCount("SIGINT"), 0);
});
