/**
 * `beckon` (the CLI package): the development stack (`beckon up`), the mail catcher, and the
 * generated configurations, exported for tests and tools.
 */
export * from "./mail-catcher.js";
export * from "./dev-configs.js";
export * from "./servers.js";
export * from "./sample-configs.js";
export { runUp, parseUpArgs, portIsFree, UsageError, UP_USAGE, type UpSettings, type UpIo } from "./up.js";
export { generateSigningKey, runGenerateConfig, runInvite, runKeygen, runServerCommand, type GeneratedKey, type Io } from "./commands.js";
export { formatLogLine } from "./child.js";
