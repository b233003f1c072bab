/**
 * `@beckon/client`: a zero-dependency Matrix SDK for room invites by email — a request layer
 * (timeouts, retries, 429s, cancellation, queues, typed errors, redaction), typed calls for the
 * Client-Server and Identity Service APIs, and high-level flows (`inviteByEmail`).
 */
export * from "./http/backoff.js";
export * from "./http/clock.js";
export * from "./http/errors.js";
export * from "./http/events.js";
export * from "./http/progress.js";
export * from "./http/queue.js";
export * from "./http/redact.js";
export * from "./http/transport.js";
export * from "./api/base.js";
export * from "./api/matrix-client.js";
export * from "./api/identity-client.js";
export * from "./flows/sync.js";
export * from "./flows/invite-by-email.js";
export * from "./flows/accept-invite.js";
