/**
 * The HTTP app both servers build on: Fastify with Matrix error rendering in one place,
 * strict JSON bodies, CORS, body limits, 404/405 as M_UNRECOGNIZED, and routes declared
 * from `@beckon/protocol` endpoint descriptors.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import {
  CanonicalJsonError,
  JsonParseError,
  MatrixError,
  isMatrixError,
  pathParams,
  toRoutePattern,
  type AuthKind,
  type EndpointDescriptor,
  parseJson,
} from "@beckon/protocol";
import type { Logger } from "pino";
import { redactUrl } from "./logger.js";

export interface HttpAppOptions {
  logger?: Logger;
  /** Maximum request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Answer CORS preflights and add CORS headers (default true). */
  cors?: boolean;
  /** Seconds to keep idle keep-alive connections. */
  keepAliveTimeoutMs?: number;
}

const CORS_HEADERS: Record<string, string> = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
  "access-control-allow-headers": "X-Requested-With, Content-Type, Authorization, Date",
};

/** Sends a MatrixError as `{errcode, error, ...extra}` with its status. */
export function sendMatrixError(reply: FastifyReply, err: MatrixError): FastifyReply {
  if (err.status === 429 && typeof err.extra.retry_after_ms === "number") {
    reply.header("retry-after", String(Math.ceil(err.extra.retry_after_ms / 1000)));
  }
  return reply.code(err.status).type("application/json").send(JSON.stringify(err.toJSON()));
}

interface RouteRecord {
  method: string;
  regex: RegExp;
}

export interface MatrixApp {
  app: FastifyInstance;
  /** Registers (method, pattern) for 405 detection; used by the router. */
  recordRoute(method: string, pattern: string): void;
}

function patternToRegex(pattern: string): RegExp {
  const parts = pattern.split("/").map((seg) => (seg.startsWith(":") ? "[^/]+" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  return new RegExp(`^${parts.join("/")}/?$`);
}

function noSchemaCompiler(): never {
  throw new Error("Fastify route schemas are not used here: validate with @beckon/protocol's validators");
}

export function createHttpApp(options: HttpAppOptions = {}): MatrixApp {
  const logger = options.logger;
  const app = Fastify({
    // Fastify gets no logger: with one, every request pays for a child logger (and its
    // validation) although requests are not logged. What matters is logged here: unhandled
    // errors by the error handler below, the rest by the servers themselves.
    logger: false,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 72_000,
    return503OnClosing: true,
    // Errors Fastify raises before routing (malformed percent-encoding, over-long path
    // parameters) are rendered as Matrix errors like every other error.
    frameworkErrors: (error, _req, reply) => {
      const code = (error as { code?: string }).code;
      if (code === "FST_ERR_MAX_PARAM_LENGTH") {
        return sendMatrixError(reply, new MatrixError("M_INVALID_PARAM", "A path parameter is too long", 414));
      }
      return sendMatrixError(reply, new MatrixError("M_INVALID_PARAM", "The request path is malformed", 400));
    },
    routerOptions: { maxParamLength: 1000, ignoreTrailingSlash: true },
    // Requests are validated by @beckon/protocol's validators, never by Fastify route schemas.
    // Without these factories Fastify loads Ajv and fast-json-stringify at start (~300 modules,
    // several MB of RSS) for schemas no route has.
    schemaController: { compilersFactory: { buildValidator: noSchemaCompiler, buildSerializer: noSchemaCompiler } },
  });
  const routes: RouteRecord[] = [];

  // Every body is JSON whatever the content type says (clients are inconsistent); an
  // empty body is "no body". Strict parsing: duplicate keys and lone surrogates are refused.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => {
    const text = typeof body === "string" ? body : body.toString("utf8");
    if (text.trim() === "") {
      done(null, undefined);
      return;
    }
    try {
      done(null, parseJson(text, { allowFloats: true, maxDepth: 64 }));
    } catch (e) {
      const msg = e instanceof JsonParseError ? e.message : "invalid JSON";
      done(new MatrixError("M_NOT_JSON", `Content not JSON: ${msg}`, 400), undefined);
    }
  });

  // During shutdown, answers to requests still in flight close their connection, so a
  // keep-alive client does not hold the closing server open until its idle timeout.
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  // Callback-style hooks on the per-request path: an async hook costs a promise and a
  // microtask turn on every request.
  app.addHook("onSend", (_req, reply, payload, done) => {
    if (closing) reply.header("connection", "close");
    done(null, payload);
  });

  if (options.cors !== false) {
    app.addHook("onRequest", (req, reply, done) => {
      reply.headers(CORS_HEADERS);
      if (req.method === "OPTIONS") {
        reply.code(204).send();
        return;
      }
      done();
    });
  }

  app.setErrorHandler((error: unknown, req, reply) => {
    if (isMatrixError(error)) return sendMatrixError(reply, error);
    // Client-supplied content that canonical JSON cannot carry (floats, integers beyond ±(2^53−1)).
    if (error instanceof CanonicalJsonError) return sendMatrixError(reply, new MatrixError("M_BAD_JSON", `Content is not valid canonical JSON: ${error.message}`, 400));
    const fe = error as { code?: string; statusCode?: number; message?: string };
    if (fe.code === "FST_ERR_CTP_BODY_TOO_LARGE") return sendMatrixError(reply, new MatrixError("M_TOO_LARGE", "Request body too large", 413));
    if (fe.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE" || fe.code === "FST_ERR_CTP_EMPTY_JSON_BODY") {
      return sendMatrixError(reply, new MatrixError("M_NOT_JSON", "Content not JSON", 400));
    }
    if (fe.code === "FST_ERR_CTP_INVALID_CONTENT_LENGTH") return sendMatrixError(reply, new MatrixError("M_BAD_JSON", "Invalid Content-Length", 400));
    if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
      return sendMatrixError(reply, new MatrixError("M_UNKNOWN", fe.message ?? "Bad request", fe.statusCode));
    }
    logger?.error({ err: error, reqId: req.id, url: redactUrl(req.url) }, "unhandled error");
    return sendMatrixError(reply, new MatrixError("M_UNKNOWN", "Internal server error", 500));
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split("?")[0] ?? "";
    const other = routes.some((r) => r.method !== req.method && r.regex.test(path));
    if (other) return sendMatrixError(reply, new MatrixError("M_UNRECOGNIZED", "Unrecognized request: method not allowed", 405));
    return sendMatrixError(reply, new MatrixError("M_UNRECOGNIZED", "Unrecognized request", 404));
  });

  return {
    app,
    recordRoute(method, pattern) {
      routes.push({ method, regex: patternToRegex(pattern) });
    },
  };
}

/** What a handler sees. */
export interface RouteContext<Req, Principal, Query = unknown> {
  body: Req;
  /** Path parameters, decoded; a parameter of `path` that an alias omits is `""`. */
  params: Record<string, string>;
  /** Query parameters, first value of each. */
  query: Record<string, string>;
  /**
   * The query as the descriptor's `query` validator returned it (repeated keys such as
   * `?via=a&via=b` kept); `undefined` when the descriptor has no query validator.
   */
  parsedQuery: Query;
  auth: Principal;
  request: FastifyRequest;
  reply: FastifyReply;
  descriptor: EndpointDescriptor;
}

/** Resolves the caller for an auth kind, or throws a MatrixError (401/403). */
export type Authenticator<P> = (req: FastifyRequest, d: EndpointDescriptor) => Promise<P>;

export interface RouterOptions<P> {
  authenticators: Partial<Record<AuthKind, Authenticator<P>>>;
  /** Called after auth and before the handler for descriptors with `rateLimited`. */
  rateLimit?: (req: FastifyRequest, d: EndpointDescriptor, principal: P | undefined) => void | Promise<void>;
  /** Called once per finished request (metrics). */
  onResponse?: (d: EndpointDescriptor, status: number, seconds: number) => void;
}

/** The endpoint id of the descriptor route that served `req`, if any (for logs and metrics). */
export function descriptorIdOf(req: FastifyRequest): string | undefined {
  const config = req.routeOptions.config as { descriptorId?: unknown } | undefined;
  return typeof config?.descriptorId === "string" ? config.descriptorId : undefined;
}

/** A sentinel a handler returns when it has written the reply itself (HTML, redirects). */
export const HANDLED = Symbol("handled");

function firstValues(q: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof q !== "object" || q === null) return out;
  for (const [k, val] of Object.entries(q as Record<string, unknown>)) {
    const s = Array.isArray(val) ? val[0] : val;
    if (typeof s === "string") out[k] = s;
  }
  return out;
}

function rawQuery(q: unknown): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (typeof q !== "object" || q === null) return out;
  for (const [k, val] of Object.entries(q as Record<string, unknown>)) {
    if (typeof val === "string") out[k] = val;
    else if (Array.isArray(val)) out[k] = val.filter((x): x is string => typeof x === "string");
  }
  return out;
}

export interface Router<P> {
  add<Req, Res, Q = unknown>(
    d: EndpointDescriptor<Req, Res, Q>,
    handler: (ctx: RouteContext<Req, P, Q>) => Promise<Res | typeof HANDLED> | Res | typeof HANDLED,
  ): void;
}

/** Declares routes from descriptors: path + aliases, auth, body/query validation, rate limits. */
export function createRouter<P>(m: MatrixApp, options: RouterOptions<P>): Router<P> {
  return {
    add(d, handler) {
      // The app ignores trailing slashes, so paths that differ only by one are one route:
      // register it once (Fastify would refuse the duplicate).
      const seen = new Set<string>();
      const paths = [d.path, ...(d.aliases ?? [])].filter((p) => {
        const norm = p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
        if (seen.has(norm)) return false;
        seen.add(norm);
        return true;
      });
      const declaredParams = pathParams(d.path);
      for (const path of paths) {
        const url = toRoutePattern(path);
        m.recordRoute(d.method, url);
        m.app.route({
          method: d.method,
          url,
          // Lets app-wide hooks (metrics) label the request with the endpoint id.
          config: { descriptorId: d.id },
          handler: async (request, reply) => {
            const started = performance.now();
            try {
              let principal: P | undefined;
              if (d.auth !== "none" && d.auth !== "signed-content") {
                const authn = options.authenticators[d.auth];
                if (!authn) throw new MatrixError("M_UNKNOWN", `no authenticator for ${d.auth}`, 500);
                principal = await authn(request, d);
              }
              if (d.rateLimited && options.rateLimit) await options.rateLimit(request, d, principal);
              const query = firstValues(request.query);
              // Validate the raw query so repeated keys reach list validators intact.
              const parsedQuery: unknown = d.query ? d.query(rawQuery(request.query), "query") : undefined;
              const params: Record<string, string> = { ...((request.params ?? {}) as Record<string, string>) };
              for (const name of declaredParams) params[name] ??= "";
              let body: unknown = request.body;
              if (d.body) {
                if (body === undefined && (d.method === "POST" || d.method === "PUT")) body = {};
                body = d.body(body, "body");
              }
              const result = await handler({
                body: body as never,
                params,
                query,
                parsedQuery: parsedQuery as never,
                auth: principal as P,
                request,
                reply,
                descriptor: d as EndpointDescriptor,
              });
              if (result === HANDLED) return reply;
              return reply.code(200).type("application/json").send(JSON.stringify(result));
            } finally {
              options.onResponse?.(d as EndpointDescriptor, reply.statusCode, (performance.now() - started) / 1000);
            }
          },
        });
      }
    },
  };
}
