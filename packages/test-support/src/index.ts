/**
 * Shared helpers for tests across the repository: free ports, temp dirs, a throwaway
 * PostgreSQL database per test file, a real SMTP receiver, and waiting.
 */
export * from "./ports.js";
export * from "./temp.js";
export * from "./postgres.js";
export * from "./smtp.js";
export * from "./smtp-sink.js";
export * from "./wait.js";
export * from "./process.js";
export * from "./beckon.js";
