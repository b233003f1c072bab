/**
 * Prometheus metrics, one prom-client registry per server instance (never the global
 * default registry: tests start several servers in one process, and two servers in one
 * process must not share counters).
 *
 * @example
 * const metrics = createMetrics("beckon_is");
 * metrics.instrumentApp(m.app);                    // every response, labelled by endpoint id
 * metrics.registerMetricsRoute(m.app);             // GET /metrics
 * const sent = metrics.counter("mails_sent_total", "Mails handed to SMTP", ["template"]);
 * sent.inc({ template: "invite" });
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { FastifyInstance } from "fastify";
import type { EndpointDescriptor } from "@beckon/protocol";
import { descriptorIdOf } from "./http.js";

interface HttpSeries {
  labels: { route: string; method: string; status: string };
  count: number;
  sum: number;
  /** Per bucket (not cumulative), plus one for +Inf. */
  buckets: number[];
}

/**
 * The HTTP request counter and duration histogram. prom-client's own would hash and sort the
 * label set on every observation (~3 µs per request, a tenth of a small request's whole cost
 * here); this keeps one series object per (route, method, status) found through one string
 * key, and leaves the Prometheus formatting to the registry at scrape time.
 */
export class HttpMetrics {
  readonly #series = new Map<string, HttpSeries>();
  readonly #buckets: readonly number[];
  readonly requestsMetric: object;
  readonly durationMetric: object;

  constructor(requestsName: string, durationName: string, buckets: readonly number[]) {
    this.#buckets = buckets;
    const series = () => [...this.#series.values()];
    const requests = { name: requestsName, help: "HTTP requests answered", type: "counter", aggregator: "sum" };
    this.requestsMetric = {
      ...requests,
      get: async () => ({ ...requests, values: series().map((s) => ({ value: s.count, labels: s.labels })) }),
      reset: () => this.#series.clear(),
    };
    const duration = { name: durationName, help: "Time to answer HTTP requests", type: "histogram", aggregator: "sum" };
    this.durationMetric = {
      ...duration,
      get: async () => ({
        ...duration,
        values: series().flatMap((s) => {
          const out: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
          let acc = 0;
          this.#buckets.forEach((le, i) => {
            acc += s.buckets[i] ?? 0;
            out.push({ metricName: `${durationName}_bucket`, labels: { ...s.labels, le }, value: acc });
          });
          out.push({ metricName: `${durationName}_bucket`, labels: { ...s.labels, le: "+Inf" }, value: s.count });
          out.push({ metricName: `${durationName}_sum`, labels: s.labels, value: s.sum });
          out.push({ metricName: `${durationName}_count`, labels: s.labels, value: s.count });
          return out;
        }),
      }),
      reset: () => this.#series.clear(),
    };
  }

  observe(route: string, method: string, status: number, seconds: number): void {
    const key = `${route}\u0000${method}\u0000${status}`;
    let s = this.#series.get(key);
    if (!s) {
      s = { labels: { route, method, status: String(status) }, count: 0, sum: 0, buckets: new Array<number>(this.#buckets.length + 1).fill(0) };
      this.#series.set(key, s);
    }
    s.count++;
    s.sum += seconds;
    let i = 0;
    while (i < this.#buckets.length && seconds > this.#buckets[i]!) i++;
    s.buckets[i]!++;
  }
}

export interface MetricsOptions {
  /** Also collect process metrics (CPU, memory, event loop lag, GC) into this registry. Default true. */
  defaultMetrics?: boolean;
}

export interface Metrics {
  readonly registry: Registry;
  readonly prefix: string;
  /**
   * `<prefix>_http_requests_total{route,method,status}` and
   * `<prefix>_http_request_duration_seconds{route,method,status}`, recorded by
   * {@link observeHttp} (plain arithmetic per response; formatted only when scraped).
   */
  readonly http: HttpMetrics;
  /**
   * For `createRouter({onResponse})`: records one descriptor route's response. A no-op once
   * {@link instrumentApp} has been called (that hook already counts every response).
   */
  onResponse(d: EndpointDescriptor, status: number, seconds: number): void;
  /** Records one HTTP response. */
  observeHttp(route: string, method: string, status: number, seconds: number): void;
  /**
   * Counts every response of `app` (descriptor routes by endpoint id, other routes by their
   * URL pattern, unmatched requests as `unmatched`). Call before `app.ready()`.
   */
  instrumentApp(app: FastifyInstance): void;
  /** A counter named `<prefix>_<name>`; asking twice for one name returns the same counter. */
  counter<L extends string = string>(name: string, help: string, labels?: readonly L[]): Counter<L>;
  gauge<L extends string = string>(name: string, help: string, labels?: readonly L[]): Gauge<L>;
  histogram<L extends string = string>(name: string, help: string, labels?: readonly L[], buckets?: number[]): Histogram<L>;
  /** Serves the registry in the Prometheus text format at `path` (default `/metrics`). */
  registerMetricsRoute(app: FastifyInstance, path?: string): void;
}

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createMetrics(prefix: string, options: MetricsOptions = {}): Metrics {
  if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(prefix)) throw new RangeError(`invalid metrics prefix "${prefix}"`);
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: `${prefix}_` });
  const full = (name: string) => (name.startsWith(`${prefix}_`) ? name : `${prefix}_${name}`);

  function existing<M>(name: string): M | undefined {
    return registry.getSingleMetric(name) as M | undefined;
  }

  const counter = <L extends string>(name: string, help: string, labels: readonly L[] = []): Counter<L> =>
    existing<Counter<L>>(full(name)) ?? new Counter<L>({ name: full(name), help, labelNames: labels, registers: [registry] });
  const gauge = <L extends string>(name: string, help: string, labels: readonly L[] = []): Gauge<L> =>
    existing<Gauge<L>>(full(name)) ?? new Gauge<L>({ name: full(name), help, labelNames: labels, registers: [registry] });
  const histogram = <L extends string>(name: string, help: string, labels: readonly L[] = [], buckets = DURATION_BUCKETS): Histogram<L> =>
    existing<Histogram<L>>(full(name)) ?? new Histogram<L>({ name: full(name), help, labelNames: labels, buckets, registers: [registry] });

  const http = new HttpMetrics(full("http_requests_total"), full("http_request_duration_seconds"), DURATION_BUCKETS);
  registry.registerMetric(http.requestsMetric as never);
  registry.registerMetric(http.durationMetric as never);
  let appInstrumented = false;

  const observeHttp = (route: string, method: string, status: number, seconds: number) => http.observe(route, method, status, seconds);

  return {
    registry,
    prefix,
    http,
    observeHttp,
    onResponse(d, status, seconds) {
      if (!appInstrumented) observeHttp(d.id, d.method, status, seconds);
    },
    instrumentApp(app) {
      appInstrumented = true;
      // Callback style: an async hook costs a promise per request.
      app.addHook("onResponse", (req, reply, done) => {
        const route = descriptorIdOf(req) ?? req.routeOptions.url ?? "unmatched";
        observeHttp(route, req.method, reply.statusCode, reply.elapsedTime / 1000);
        done();
      });
    },
    counter,
    gauge,
    histogram,
    registerMetricsRoute(app, path = "/metrics") {
      app.get(path, async (_req, reply) => {
        const text = await registry.metrics();
        return reply.code(200).type(registry.contentType).send(text);
      });
    },
  };
}
