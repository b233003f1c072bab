/**
 * `@beckon/server-kit`: plumbing shared by the homeserver and the identity server
 * (database engines and migrations, the HTTP app and router, logs, clock, notifier).
 */
export * from "./clock.js";
export * from "./db.js";
export * from "./http.js";
export * from "./logger.js";
export * from "./migrate.js";
export * from "./notifier.js";
