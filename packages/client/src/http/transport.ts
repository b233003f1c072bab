/**
 * The request layer: one `fetch` per attempt, with per-attempt timeouts, an overall deadline,
 * retries with exponential back-off and jitter, 429 handling, cancellation, queues, progress,
 * typed errors and redaction. Everything from the outside world (fetch, clock, randomness)
 * is injected.
 *
 * Retry rules (the default {@link RetryPolicy}):
 * - 429 (`M_LIMIT_EXCEEDED`) is retried for **every** request after `retry_after_ms` /
 *   `Retry-After` (a 429 means the server did nothing);
 * - network errors, per-attempt timeouts and 502/503/504 are retried only for idempotent
 *   requests: GET, PUT, DELETE, and POSTs marked idempotent (e.g. made so by a transaction ID);
 * - a connection that failed before anything was sent (refused, DNS failure) is retried for
 *   every request, because the server cannot have seen it;
 * - nothing else is retried; an abort or the deadline stops retries and waits at once.
 *
 * @example
 * const transport = new Transport({ fetch: globalThis.fetch });
 * const body = await transport.send({ baseUrl: "https://hs", method: "GET", path: "/_matrix/client/versions" }, { timeoutMs: 5000, maxAttempts: 3 });
 */
import { MatrixError, utf8Decode, utf8Encode, type Validator } from "@beckon/protocol";
import { backoffDelay, parseRetryAfter, type BackoffOptions } from "./backoff.js";
import { sleep, systemClock, type Clock } from "./clock.js";
import { ConnectionError, HttpError, MatrixCallError, errorKind, type RequestInfo } from "./errors.js";
import { RequestEvents } from "./events.js";
import { canStreamUploads, progressStream, readBody, type ProgressListener } from "./progress.js";
import { JobQueues, type QueuePolicy } from "./queue.js";
import { Redactor } from "./redact.js";

/** The subset of `fetch` the SDK uses. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";

/** What a retry policy sees after a failed attempt. */
export interface RetryContext {
  readonly error: unknown;
  /** The attempt that failed (1-based). */
  readonly attempt: number;
  readonly idempotent: boolean;
  readonly method: string;
  /** The decision of the default policy. */
  readonly defaultDecision: boolean;
}

/** Decides whether to retry; `undefined` defers to the default policy. */
export type RetryPolicy = (ctx: RetryContext) => boolean | undefined;

/** Per-call options, also usable as transport-wide defaults. */
export interface CallOptions {
  /** Aborting stops the call, its retries and its waits (rejects with a `ConnectionError` of kind `aborted`). */
  readonly signal?: AbortSignal;
  /** Limit of one attempt in ms (default 60 000; 0 = none). */
  readonly timeoutMs?: number;
  /** Limit of the whole call in ms, queueing, attempts and waits included (default: none). */
  readonly deadlineMs?: number;
  /** A 429 asking for a longer wait than this (default 300 000 ms) is returned instead of waited out. */
  readonly maxRetryAfterMs?: number;
  /** Attempts in total, the first included (default 4). */
  readonly maxAttempts?: number;
  readonly backoff?: BackoffOptions;
  readonly retryOn?: RetryPolicy;
  /** Calls with the same queue ID run one at a time, in order. */
  readonly queueId?: string;
  /** What a failure does to the calls waiting behind it (default `AlwaysContinue`). */
  readonly queuePolicy?: QueuePolicy;
  /** Overrides whether the request may be repeated safely. */
  readonly idempotent?: boolean;
  readonly onUploadProgress?: ProgressListener;
  readonly onDownloadProgress?: ProgressListener;
}

/** One HTTP request, before retries. */
export interface HttpRequest<T = unknown> {
  readonly baseUrl: string;
  readonly method: HttpMethod;
  /** The path, parameters already encoded (see `buildPath`). */
  readonly path: string;
  readonly query?: Readonly<Record<string, string | number | boolean | readonly string[] | undefined>>;
  /** A JSON body. */
  readonly body?: unknown;
  /** A raw body (uploads); sent instead of `body`. */
  readonly rawBody?: Uint8Array;
  readonly contentType?: string;
  readonly accessToken?: string | undefined;
  /** Whether the request may be repeated (default: every method but POST). */
  readonly idempotent?: boolean;
  /** Validates a 2xx JSON body; a failure is an `incorrect-response` {@link HttpError}. */
  readonly validate?: Validator<T>;
  /** `json` (default) parses the body; `bytes` returns it raw. */
  readonly responseType?: "json" | "bytes";
}

export interface TransportOptions {
  readonly fetch?: FetchLike;
  readonly clock?: Clock;
  /** Randomness for jitter, in [0, 1). */
  readonly random?: () => number;
  /** Defaults for every call (a call's own options win). */
  readonly defaults?: CallOptions;
  /** Receives failures of background jobs (they never become unhandled rejections). */
  readonly onBackgroundError?: (error: unknown, label: string) => void;
}

/** Error codes (Node/undici) that mean the request never left this machine. */
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT", "EADDRNOTAVAIL"]);

/** True when a fetch failure certainly happened before the request was sent. */
export function failedBeforeSending(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NOT_SENT_CODES.has(code)) return true;
    if ((e as { name?: unknown }).name === "ConnectTimeoutError") return true;
    // AggregateError (happy eyeballs): every address refused.
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length > 0 && errors.every((x) => failedBeforeSending(x))) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** The default retry decision (see the module comment). */
export function defaultRetryDecision(error: unknown, idempotent: boolean): boolean {
  if (error instanceof ConnectionError) {
    if (error.kind === "network") return idempotent || !error.maybeSent;
    if (error.kind === "timeout") return idempotent;
    return false;
  }
  if (errorKind(error) === "too-many-requests") return true;
  const status = error instanceof MatrixError || error instanceof HttpError ? error.status : 0;
  return idempotent && (status === 502 || status === 503 || status === 504);
}

const DEFAULT_TIMEOUT_MS = 60_000;

/** One call's method and URL; the redacted form is built only when an error or event needs it. */
class CallContext {
  #info: RequestInfo | undefined;
  constructor(
    readonly method: string,
    readonly rawUrl: string,
    private readonly redactor: Redactor,
  ) {}

  get info(): RequestInfo {
    return (this.#info ??= { method: this.method, url: this.redactor.redact(this.rawUrl) });
  }
}
const DEFAULT_MAX_ATTEMPTS = 4;
const DEFAULT_MAX_RETRY_AFTER_MS = 300_000;

type StopReason = "timeout" | "deadline" | "aborted";

export class Transport {
  readonly events = new RequestEvents();
  readonly queues = new JobQueues();
  readonly redactor = new Redactor();
  readonly clock: Clock;
  readonly #fetch: FetchLike;
  /** Randomness for jitter (injected for tests). */
  readonly random: () => number;
  readonly #defaults: CallOptions;
  readonly #onBackgroundError: ((error: unknown, label: string) => void) | undefined;

  constructor(opts: TransportOptions = {}) {
    const f = opts.fetch ?? (globalThis.fetch as FetchLike | undefined);
    if (!f) throw new TypeError("no fetch implementation: pass one in TransportOptions.fetch");
    // Browsers require fetch to be called with the global as `this`.
    this.#fetch = opts.fetch ?? ((url, init) => globalThis.fetch(url, init));
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.#defaults = opts.defaults ?? {};
    this.#onBackgroundError = opts.onBackgroundError;
  }

  /** The full URL of a request (not redacted). */
  static url(req: Pick<HttpRequest, "baseUrl" | "path" | "query">): string {
    let url = req.baseUrl.replace(/\/+$/, "") + req.path;
    if (req.query) {
      const qs = new URLSearchParams();
      for (const [k, val] of Object.entries(req.query)) {
        if (val === undefined) continue;
        if (Array.isArray(val)) for (const item of val as readonly string[]) qs.append(k, item);
        else qs.append(k, String(val));
      }
      const s = qs.toString();
      if (s) url += (url.includes("?") ? "&" : "?") + s;
    }
    return url;
  }

  /**
   * Sends a request with retries; resolves with the parsed (and validated) body.
   * Rejects with {@link MatrixCallError}, {@link HttpError} or {@link ConnectionError}.
   */
  send<T = unknown>(req: HttpRequest<T>, callOptions: CallOptions = {}): Promise<T> {
    const opts: CallOptions = { ...this.#defaults, ...callOptions };
    if (req.accessToken) this.redactor.add(req.accessToken);
    const call = new CallContext(req.method, Transport.url(req), this.redactor);
    // One signal for the whole call: the caller's abort or the overall deadline.
    let callSignal = opts.signal;
    let stop: { reason: StopReason | undefined } = { reason: undefined };
    let cleanup: (() => void) | undefined;
    if (opts.deadlineMs !== undefined) {
      const ctrl = new AbortController();
      stop = { reason: undefined };
      const handle = this.clock.setTimeout(() => {
        stop.reason = "deadline";
        ctrl.abort(new ConnectionError("deadline", `no answer within ${opts.deadlineMs} ms`, call.info));
      }, opts.deadlineMs);
      const onAbort = (): void => {
        stop.reason = "aborted";
        ctrl.abort(opts.signal?.reason);
      };
      if (opts.signal?.aborted) onAbort();
      else opts.signal?.addEventListener("abort", onAbort, { once: true });
      cleanup = () => {
        this.clock.clearTimeout(handle);
        opts.signal?.removeEventListener("abort", onAbort);
      };
      callSignal = ctrl.signal;
    }
    const deadlineAt = opts.deadlineMs !== undefined ? this.clock.now() + opts.deadlineMs : undefined;
    const run = (): Promise<T> => this.#attempts(req, opts, call, callSignal, stop, deadlineAt);
    const p = opts.queueId !== undefined ? this.queues.enqueue(opts.queueId, run, opts.queuePolicy ?? "AlwaysContinue", callSignal) : run();
    if (opts.queueId === undefined) return cleanup ? p.finally(cleanup) : p;
    const mapped = p.catch((e: unknown) => {
      // A queue abort carries no request info or deadline distinction: rebuild it.
      if (e instanceof ConnectionError && e.kind === "aborted" && e.request === undefined) {
        throw stop.reason === "deadline"
          ? new ConnectionError("deadline", `no answer within ${opts.deadlineMs} ms`, call.info, { maybeSent: false })
          : new ConnectionError("aborted", "aborted while queued", call.info, { maybeSent: false, cause: e.cause });
      }
      if (e instanceof ConnectionError && e.kind === "cancelled" && e.request === undefined) {
        throw new ConnectionError("cancelled", e.message.replace(/^cancelled: /, ""), call.info, { maybeSent: false, cause: e.cause });
      }
      throw e;
    });
    return cleanup ? mapped.finally(cleanup) : mapped;
  }

  /**
   * Runs a job in the background: its failure is reported to `onBackgroundError` and as a
   * `background-error` event, never as an unhandled rejection. Resolves with the result, or
   * `undefined` on failure.
   */
  background<T>(label: string, job: () => Promise<T>): Promise<T | undefined> {
    let p: Promise<T>;
    try {
      p = job();
    } catch (e) {
      p = Promise.reject(e);
    }
    return p.then(
      (v) => v,
      (error: unknown) => {
        try {
          this.#onBackgroundError?.(error, label);
        } catch {
          // The reporter itself must not throw into the void.
        }
        this.events.emit({ type: "background-error", label, error });
        return undefined;
      },
    );
  }

  async #attempts<T>(
    req: HttpRequest<T>,
    opts: CallOptions,
    call: CallContext,
    signal: AbortSignal | undefined,
    stop: { reason: StopReason | undefined },
    deadlineAt: number | undefined,
  ): Promise<T> {
    const idempotent = opts.idempotent ?? req.idempotent ?? req.method !== "POST";
    const maxAttempts = Math.max(1, opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
    for (let attempt = 1; ; attempt++) {
      this.#throwIfStopped(signal, stop, call, attempt === 1 ? false : true);
      try {
        return await this.#once(req, opts, call, signal, stop);
      } catch (error) {
        if (error instanceof ConnectionError && (error.kind === "aborted" || error.kind === "deadline")) throw error;
        if (attempt >= maxAttempts) throw error;
        const defaultDecision = defaultRetryDecision(error, idempotent);
        const decision = opts.retryOn?.({ error, attempt, idempotent, method: req.method, defaultDecision }) ?? defaultDecision;
        if (!decision) throw error;
        const limited = errorKind(error) === "too-many-requests";
        const asked = limited && (error instanceof MatrixCallError || error instanceof HttpError) ? error.retryAfterMs : undefined;
        const delayMs = asked ?? backoffDelay(attempt, opts.backoff ?? {}, this.random);
        // Waiting is pointless when the server asks for longer than we allow or than the deadline leaves.
        if (asked !== undefined && asked > (opts.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS)) throw error;
        if (deadlineAt !== undefined && this.clock.now() + delayMs >= deadlineAt) throw error;
        if (limited) this.events.emit({ type: "rate-limited", method: call.method, url: call.info.url, attempt, retryAfterMs: delayMs });
        this.events.emit({ type: "retry-scheduled", method: call.method, url: call.info.url, attempt, delayMs, reason: errorKind(error) });
        try {
          await sleep(this.clock, delayMs, signal);
        } catch {
          this.#throwIfStopped(signal, stop, call, true);
          throw error;
        }
      }
    }
  }

  #throwIfStopped(signal: AbortSignal | undefined, stop: { reason: StopReason | undefined }, call: CallContext, maybeSent: boolean): void {
    if (!signal?.aborted) return;
    if (stop.reason === "deadline") throw new ConnectionError("deadline", "the call's deadline passed", call.info, { maybeSent });
    throw new ConnectionError("aborted", "aborted by the caller", call.info, { maybeSent, cause: signal.reason });
  }

  async #once<T>(req: HttpRequest<T>, opts: CallOptions, call: CallContext, signal: AbortSignal | undefined, stop: { reason: StopReason | undefined }): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // A signal costs undici ~15 µs per request: only make one when something can abort.
    const ctrl = timeoutMs > 0 || signal ? new AbortController() : undefined;
    let reason: StopReason | undefined;
    const onAbort = (): void => {
      reason = stop.reason === "deadline" ? "deadline" : "aborted";
      ctrl?.abort(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer =
      timeoutMs > 0
        ? this.clock.setTimeout(() => {
            reason = "timeout";
            ctrl?.abort(new ConnectionError("timeout", `no answer within ${timeoutMs} ms`, call.info));
          }, timeoutMs)
        : undefined;
    try {
      const { init, bodyLength } = this.#init(req, opts, ctrl?.signal);
      let res: Response;
      try {
        res = await this.#fetch(call.rawUrl, init);
      } catch (e) {
        throw this.#connectionError(e, reason, call, timeoutMs);
      }
      let body: Uint8Array | string;
      try {
        body = req.responseType === "bytes" || opts.onDownloadProgress ? await readBody(res, opts.onDownloadProgress) : await res.text();
      } catch (e) {
        throw this.#connectionError(e, reason, call, timeoutMs, true);
      }
      if (opts.onUploadProgress && bodyLength !== undefined && !canStreamUploads()) opts.onUploadProgress({ loaded: bodyLength, total: bodyLength });
      return this.#interpret(req, res, body, call);
    } finally {
      if (timer !== undefined) this.clock.clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  #init(req: HttpRequest, opts: CallOptions, signal: AbortSignal | undefined): { init: RequestInit; bodyLength: number | undefined } {
    const headers: Record<string, string> = { accept: "application/json" };
    if (req.accessToken) headers["authorization"] = `Bearer ${req.accessToken}`;
    let body: Uint8Array | undefined;
    if (req.rawBody !== undefined) {
      body = req.rawBody;
      headers["content-type"] = req.contentType ?? "application/octet-stream";
    } else if (req.body !== undefined) {
      body = utf8Encode(JSON.stringify(req.body));
      headers["content-type"] = "application/json";
    }
    const init: RequestInit & { duplex?: "half" } = { method: req.method, headers };
    if (signal) init.signal = signal;
    if (body !== undefined) {
      if (opts.onUploadProgress && canStreamUploads()) {
        init.body = progressStream(body, opts.onUploadProgress);
        init.duplex = "half";
      } else {
        if (opts.onUploadProgress) opts.onUploadProgress({ loaded: 0, total: body.byteLength });
        init.body = body as BodyInit;
      }
    } else if (req.method === "POST" || req.method === "PUT") {
      // Matrix POSTs without parameters still take `{}`.
      init.body = "{}";
      headers["content-type"] = "application/json";
    }
    return { init, bodyLength: body?.byteLength };
  }

  #redactJson(value: unknown): unknown {
    try {
      return JSON.parse(this.redactor.redact(JSON.stringify(value)));
    } catch {
      return undefined;
    }
  }

  #connectionError(e: unknown, reason: StopReason | undefined, call: CallContext, timeoutMs: number, afterHeaders = false): ConnectionError {
    if (reason === "timeout") return new ConnectionError("timeout", `no answer within ${timeoutMs} ms`, call.info);
    if (reason === "deadline") return new ConnectionError("deadline", "the call's deadline passed", call.info);
    if (reason === "aborted") return new ConnectionError("aborted", "aborted by the caller", call.info, { cause: e });
    const detail = e instanceof Error ? this.redactor.redact(describe(e)) : "fetch failed";
    return new ConnectionError("network", detail, call.info, { maybeSent: afterHeaders || !failedBeforeSending(e), cause: e });
  }

  #interpret<T>(req: HttpRequest<T>, res: Response, body: Uint8Array | string, call: CallContext): T {
    if (res.ok && req.responseType === "bytes") return (typeof body === "string" ? utf8Encode(body) : body) as T;
    let text: string;
    try {
      text = typeof body === "string" ? body : utf8Decode(body);
    } catch {
      text = "";
    }
    let json: unknown;
    let parsed = false;
    try {
      json = JSON.parse(text);
      parsed = true;
    } catch {
      // handled below
    }
    if (res.ok) {
      if (!parsed) throw new HttpError(res.status, this.redactor.redact(text), call.info, { kind: "incorrect-response", detail: "the body is not JSON" });
      if (!req.validate) return json as T;
      try {
        return req.validate(json, "response");
      } catch (e) {
        const detail = e instanceof Error ? e.message : "unexpected shape";
        throw new HttpError(res.status, this.redactor.redact(text), call.info, { kind: "incorrect-response", detail: this.redactor.redact(detail) });
      }
    }
    const headerDelay = parseRetryAfter(res.headers.get("retry-after"), this.clock.now());
    const me = parsed ? MatrixError.fromBody(res.status, json) : undefined;
    if (me) {
      // Extra fields are printed by inspectors: they get the same redaction as messages.
      const extra = this.#redactJson(me.extra) as Record<string, unknown>;
      const bodyDelay = typeof extra["retry_after_ms"] === "number" && extra["retry_after_ms"] >= 0 ? extra["retry_after_ms"] : undefined;
      throw new MatrixCallError(me.errcode, this.redactor.redact(me.message), res.status, extra, call.info, bodyDelay ?? headerDelay);
    }
    throw new HttpError(res.status, this.redactor.redact(text), call.info, { ...(headerDelay === undefined ? {} : { retryAfterMs: headerDelay }), ...(parsed ? { json: this.#redactJson(json) } : {}) });
  }
}

function describe(e: Error): string {
  const cause = (e as { cause?: unknown }).cause;
  const code = cause && typeof cause === "object" ? (cause as { code?: unknown }).code : undefined;
  const causeMsg = cause instanceof Error ? cause.message : undefined;
  return [e.message, typeof code === "string" ? code : undefined, causeMsg && causeMsg !== e.message ? causeMsg : undefined].filter(Boolean).join(": ");
}
