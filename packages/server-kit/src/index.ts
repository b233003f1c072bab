/**
 * `@beckon/server-kit`: plumbing shared by the homeserver and the identity server
 * (database engines and migrations, the HTTP app and router, config, logs, clock, notifier,
 * rate limits, metrics, graceful shutdown, guarded outbound HTTP and Matrix server discovery).
 */
export * from "./clock.js";
export * from "./config.js";
export * from "./db.js";
export { WalCheckpointer, type WalCheckpointerOptions } from "./wal-checkpointer.js";
export * from "./discovery.js";
export * from "./http.js";
export * from "./lifecycle.js";
export * from "./logger.js";
export * from "./metrics.js";
export * from "./migrate.js";
export * from "./notifier.js";
export * from "./outbound.js";
export * from "./rate-limit.js";
export * from "./batch.js";
