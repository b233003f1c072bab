/**
 * Ephemeral key pairs for invites. The many-keys test runs in a child process with a kill
 * timer: the failure it guards against is Node's main thread deadlocking (RELIABILITY.md DEF-F4,
 * and `generateEphemeralKeyPair`), which would stop this process's own timers too.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { decodeBase64, encodeBase64Url } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { generateEphemeralKeyPair } from "./keys.js";

describe("generateEphemeralKeyPair", () => {
  it("gives a seed and the public key that belongs to it, both unpadded URL-safe base64", async () => {
    const k = generateEphemeralKeyPair();
    assert.match(k.privateKey, /^[A-Za-z0-9_-]{43}$/);
    assert.match(k.publicKey, /^[A-Za-z0-9_-]{43}$/);
    const seed = decodeBase64(k.privateKey);
    assert.equal(encodeBase64Url(nodeCryptoProvider.ed25519PublicKeySync(seed)), k.publicKey);
    const other = generateEphemeralKeyPair();
    assert.notEqual(other.privateKey, k.privateKey);
  });

  it("uses the injected random source when given one (deterministic tests)", async () => {
    const seed = new Uint8Array(32).fill(7);
    const k = generateEphemeralKeyPair(() => seed);
    assert.equal(k.privateKey, encodeBase64Url(seed));
    assert.equal(k.publicKey, encodeBase64Url(nodeCryptoProvider.ed25519PublicKeySync(seed)));
  });

  it("30 000 keys, 32 at a time, never hang the process (generateKeyPairSync + JWK export deadlocked within 20 000)", { timeout: 120_000 }, async () => {
    const script = `
      const { generateEphemeralKeyPair } = await import(${JSON.stringify(new URL("./keys.js", import.meta.url).href)});
      let made = 0;
      await Promise.all(Array.from({ length: 32 }, async () => { while (made < 30000) { made++; generateEphemeralKeyPair(); await null; } }));
      process.stdout.write("made " + made);
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    clearTimeout(timer);
    assert.equal(code, 0, `the key generator ${code === null ? "hung and was killed after 90 s" : `exited with ${code}`}: ${out}`);
    assert.equal(out, "made 30000");
  });
});
