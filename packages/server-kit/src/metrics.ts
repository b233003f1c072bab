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

type HttpLabels = "route" | "method" | "status";

export interface MetricsOptions {
  /** Also collect process metrics (CPU, memory, event loop lag, GC) into this registry. Default true. */
  defaultMetrics?: boolean;
}

export interface Metrics {
  readonly registry: Registry;
  readonly prefix: string;
  /** `<prefix>_http_requests_total{route,method,status}`. */
  readonly httpRequests: Counter<HttpLabels>;
  /** `<prefix>_http_request_duration_seconds{route,method,status}`. */
  readonly httpDuration: Histogram<HttpLabels>;
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

  const httpRequests = counter<HttpLabels>("http_requests_total", "HTTP requests answered", ["route", "method", "status"]);
  const httpDuration = histogram<HttpLabels>("http_request_duration_seconds", "Time to answer HTTP requests", ["route", "method", "status"]);
  let appInstrumented = false;

  const observeHttp = (route: string, method: string, status: number, seconds: number) => {
    const labels = { route, method, status: String(status) };
    httpRequests.inc(labels);
    httpDuration.observe(labels, seconds);
  };

  return {
    registry,
    prefix,
    httpRequests,
    httpDuration,
    observeHttp,
    onResponse(d, status, seconds) {
      if (!appInstrumented) observeHttp(d.id, d.method, status, seconds);
    },
    instrumentApp(app) {
      appInstrumented = true;
      app.addHook("onResponse", async (req, reply) => {
        const route = descriptorIdOf(req) ?? req.routeOptions.url ?? "unmatched";
        observeHttp(route, req.method, reply.statusCode, reply.elapsedTime / 1000);
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
