/**
 * `@beckon/protocol`: the Matrix wire, with no I/O and no runtime dependencies.
 * Runs in Node and browsers; `@beckon/protocol/node` adds a `node:crypto` provider.
 */
export * from "./base64.js";
export * from "./canonical-json.js";
export * from "./crypto.js";
export * from "./errors.js";
export * from "./identifiers.js";
export * from "./sha256.js";
export * from "./signing.js";
export * from "./threepid.js";
export * from "./utf8.js";
export * from "./validate.js";
export * from "./x-matrix.js";
export * from "./endpoints/index.js";
export * from "./events/index.js";
