/**
 * `@beckon/identity-server`: a Matrix identity server (Identity Service API v2) with durable
 * invites, signed onbind delivery and a mail outbox, on SQLite or PostgreSQL.
 */
export { createIdentityServer, type CreateIdentityServerOptions, type IdentityServer } from "./app.js";
export { loadIdentityServerConfig, identityServerConfigSpec, type IdentityServerConfig } from "./config.js";
export { runIdentityServer, type RunIdentityServerOptions } from "./main.js";
export { runIdentityServerCli } from "./cli.js";
export { DeliveryWorker, backoffMs, type DeliveryOptions } from "./domain/delivery.js";
export { redactEmail } from "./domain/threepid.js";
export { hashAddress } from "./domain/lookup.js";
export type { HomeserverClient, HomeserverResponse } from "./domain/homeserver-client.js";
export { HomeserverUnreachable } from "./domain/homeserver-client.js";
export { createHomeserverClient } from "./outbound/homeserver-client.js";
