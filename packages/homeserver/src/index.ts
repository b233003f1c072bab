/**
 * `@beckon/homeserver`: a single-server Matrix homeserver with real signed and hashed room
 * events, the spec's auth rules, and email (3PID) room invites through an identity server.
 */
export { createHomeserver, type CreateHomeserverOptions, type Homeserver } from "./app.js";
export { loadHomeserverConfig, homeserverConfigFor, homeserverConfigSpec, type HomeserverConfig } from "./config.js";
export { runHomeserver, type RunHomeserverOptions } from "./main.js";
export { runHomeserverCli } from "./cli.js";
