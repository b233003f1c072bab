/**
 * The tests of lifecycle-invites.test.ts on PostgreSQL (skipped without TEST_POSTGRES_URL), in
 * their own process so that both engines run side by side.
 */
process.env["BECKON_LIFECYCLE_ENGINE"] = "postgres";
await import("./lifecycle-invites.test.js");
