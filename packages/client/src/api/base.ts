/**
 * What the typed clients share: a {@link Transport}, a base URL, an access token, and one
 * `call()` that turns an endpoint descriptor from `@beckon/protocol` into a request (path
 * parameters always percent-encoded, the descriptor's response validator applied).
 */
import { buildPath, type EndpointDescriptor } from "@beckon/protocol";
import { Transport, type CallOptions, type FetchLike, type HttpRequest, type TransportOptions } from "../http/transport.js";
import type { Clock } from "../http/clock.js";

/** Options every typed client takes: its server, and either a shared transport or the world to build one. */
export interface ApiClientOptions {
  /** The server's base URL, e.g. `https://matrix.example.org` or `http://127.0.0.1:8008`. */
  readonly baseUrl: string;
  readonly accessToken?: string;
  /** Share one transport (queues, events, redaction) between clients; else one is made from the fields below. */
  readonly transport?: Transport;
  readonly fetch?: FetchLike;
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly defaults?: CallOptions;
  readonly onBackgroundError?: TransportOptions["onBackgroundError"];
}

/** The parts of a call: path parameters, query and body. */
export interface CallInput<Req, Query> {
  readonly params?: Record<string, string>;
  readonly query?: Query;
  readonly body?: Req;
}

export function makeTransport(opts: ApiClientOptions): Transport {
  if (opts.transport) return opts.transport;
  const t: TransportOptions = {
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.random ? { random: opts.random } : {}),
    ...(opts.defaults ? { defaults: opts.defaults } : {}),
    ...(opts.onBackgroundError ? { onBackgroundError: opts.onBackgroundError } : {}),
  };
  return new Transport(t);
}

export abstract class ApiClient {
  readonly transport: Transport;
  readonly baseUrl: string;
  #accessToken: string | undefined;

  constructor(opts: ApiClientOptions) {
    this.transport = makeTransport(opts);
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    this.accessToken = opts.accessToken;
  }

  get accessToken(): string | undefined {
    return this.#accessToken;
  }

  set accessToken(token: string | undefined) {
    this.#accessToken = token;
    this.transport.redactor.add(token);
  }

  /** Calls an endpoint described in `@beckon/protocol`. */
  call<Req, Res, Query>(d: EndpointDescriptor<Req, Res, Query>, input: CallInput<Req, Query> = {}, opts: CallOptions = {}, extra: Partial<HttpRequest<Res>> = {}): Promise<Res> {
    const needsToken = d.auth !== "none" && d.auth !== "signed-content";
    const req: HttpRequest<Res> = {
      baseUrl: this.baseUrl,
      method: d.method,
      path: buildPath(d, input.params),
      ...(input.query !== undefined ? { query: input.query as HttpRequest["query"] & object } : {}),
      ...(input.body !== undefined ? { body: input.body } : {}),
      ...(needsToken && this.#accessToken ? { accessToken: this.#accessToken } : {}),
      ...(d.response ? { validate: d.response } : {}),
      ...extra,
    };
    return this.transport.send(req, opts);
  }

  /** Runs `job` in the background: failures go to `onBackgroundError`, never to unhandled rejections. */
  background<T>(label: string, job: () => Promise<T>): Promise<T | undefined> {
    return this.transport.background(label, job);
  }
}
