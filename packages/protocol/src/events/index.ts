/**
 * Room events: PDU and content types for room versions 10 and 11, the redaction algorithm,
 * content hashes, reference hashes and event IDs.
 */
export * from "./types.js";
export * from "./redaction.js";
export * from "./hashing.js";
