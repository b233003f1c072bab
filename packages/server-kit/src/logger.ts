/**
 * Structured logs (pino) with secrets kept out: Authorization headers, access tokens in
 * query strings, and fields that commonly hold secrets are redacted.
 */
import { pino, type Logger, type LoggerOptions } from "pino";

const SECRET_QUERY = /([?&](?:access_token|token|private_key|client_secret|sid)=)[^&#]*/gi;

/** Replaces secret query-parameter values in a URL or path with `<redacted>`. */
export function redactUrl(url: string): string {
  return url.replace(SECRET_QUERY, "$1<redacted>");
}

export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "headers.authorization",
  "*.access_token",
  "*.id_access_token",
  "*.token",
  "*.private_key",
  "*.client_secret",
  "*.password",
  "access_token",
  "id_access_token",
  "token",
  "private_key",
  "client_secret",
  "password",
];

export interface LoggerConfig {
  level?: string;
  name?: string;
  /** Write to this stream instead of stdout (tests capture logs with it). */
  destination?: NodeJS.WritableStream;
}

export function createLogger(config: LoggerConfig = {}): Logger {
  const options: LoggerOptions = {
    level: config.level ?? "info",
    redact: { paths: REDACT_PATHS, censor: "<redacted>" },
    serializers: {
      req(req: { method?: string; url?: string; ip?: string }) {
        return { method: req.method, url: req.url ? redactUrl(req.url) : undefined, ip: req.ip };
      },
      res(res: { statusCode?: number }) {
        return { statusCode: res.statusCode };
      },
      err: pino.stdSerializers.err,
    },
  };
  if (config.name !== undefined) options.name = config.name;
  return config.destination ? pino(options, config.destination as pino.DestinationStream) : pino(options);
}

export type { Logger };
