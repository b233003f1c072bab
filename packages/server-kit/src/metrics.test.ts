import { test } from "node:test";
import assert from "node:assert/strict";
import { endpoint } from "@beckon/protocol";
import { createHttpApp, createRouter } from "./http.js";
import { createMetrics } from "./metrics.js";

const ping = endpoint({ id: "test.ping", api: "client", method: "GET", path: "/_test/ping", auth: "none", rateLimited: false });

function line(text: string, prefix: string): string | undefined {
  return text.split("\n").find((l) => l.startsWith(prefix));
}

test("two servers in one process keep separate registries", async () => {
  const apps = [];
  for (let i = 0; i < 2; i++) {
    const metrics = createMetrics("beckon_test", { defaultMetrics: i === 0 });
    const m = createHttpApp();
    metrics.instrumentApp(m.app);
    const router = createRouter(m, { authenticators: {}, onResponse: metrics.onResponse });
    router.add(ping, () => ({ pong: true }));
    m.app.get("/plain/:x", async () => "ok");
    metrics.registerMetricsRoute(m.app);
    await m.app.ready();
    apps.push({ app: m.app, metrics });
  }
  const [a, b] = apps;
  assert.ok(a && b);
  for (let i = 0; i < 3; i++) await a.app.inject({ method: "GET", url: "/_test/ping" });
  await a.app.inject({ method: "GET", url: "/plain/1" });
  await a.app.inject({ method: "GET", url: "/nowhere" });
  await b.app.inject({ method: "GET", url: "/_test/ping" });

  const r = await a.app.inject({ method: "GET", url: "/metrics" });
  assert.equal(r.statusCode, 200);
  assert.match(String(r.headers["content-type"]), /^text\/plain/);
  const text = r.body;
  // instrumentApp counts once even though the router's onResponse is wired too.
  assert.equal(line(text, 'beckon_test_http_requests_total{route="test.ping",method="GET",status="200"}'), 'beckon_test_http_requests_total{route="test.ping",method="GET",status="200"} 3');
  assert.ok(line(text, 'beckon_test_http_requests_total{route="/plain/:x",method="GET",status="200"} 1'));
  assert.ok(line(text, 'beckon_test_http_requests_total{route="unmatched",method="GET",status="404"} 1'));
  assert.ok(line(text, 'beckon_test_http_request_duration_seconds_count{route="test.ping",method="GET",status="200"} 3'));
  assert.ok(line(text, "beckon_test_process_cpu_user_seconds_total"), "default metrics collected when asked");
  // Histogram buckets are cumulative and end with +Inf = count.
  const buckets = text
    .split("\n")
    .filter((l) => l.startsWith('beckon_test_http_request_duration_seconds_bucket{route="test.ping",method="GET",status="200",le='))
    .map((l) => Number(l.split(" ")[1]));
  assert.equal(buckets.length, 14);
  assert.ok(buckets.every((v, i) => i === 0 || v >= buckets[i - 1]!), "cumulative");
  assert.equal(buckets[13], 3);
  assert.ok(line(text, 'beckon_test_http_request_duration_seconds_bucket{route="test.ping",method="GET",status="200",le="+Inf"} 3'));
  assert.match(line(text, 'beckon_test_http_request_duration_seconds_sum{route="test.ping",method="GET",status="200"}') ?? "", / \d/);

  const other = await b.metrics.registry.metrics();
  assert.ok(line(other, 'beckon_test_http_requests_total{route="test.ping",method="GET",status="200"} 1'));
  assert.equal(line(other, "beckon_test_process_cpu_user_seconds_total"), undefined);
  for (const x of apps) await x.app.close();
});

test("router onResponse alone, and custom counters/gauges", async () => {
  const metrics = createMetrics("beckon_x", { defaultMetrics: false });
  metrics.onResponse(ping, 200, 0.01);
  const c1 = metrics.counter("mails_sent_total", "mails", ["template"]);
  const c2 = metrics.counter("mails_sent_total", "mails", ["template"]);
  assert.equal(c1, c2, "same name, same counter");
  c1.inc({ template: "invite" });
  metrics.gauge("queue_depth", "pending").set(4);
  metrics.histogram("delivery_seconds", "delivery").observe(0.2);
  const text = await metrics.registry.metrics();
  assert.ok(line(text, 'beckon_x_http_requests_total{route="test.ping",method="GET",status="200"} 1'));
  assert.ok(line(text, 'beckon_x_mails_sent_total{template="invite"} 1'));
  assert.ok(line(text, "beckon_x_queue_depth 4"));
  assert.ok(line(text, "beckon_x_delivery_seconds_count 1"));
  assert.throws(() => createMetrics("bad-prefix"), RangeError);
});
