/**
 * `beckon up` as a newcomer meets it: the mail catcher prints the invite mail and lists it,
 * `beckon invite` (the SDK from a script) sends the invite, and a second start of the same data
 * dir on other ports keeps the homeserver's name, its users and rooms, and the two servers
 * still reach each other (a bind after the move delivers the invite).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort, tempDir, waitFor } from "@beckon/test-support";
import { IdentityClient, MatrixClient, ensureIdentityToken, waitForInvite } from "@beckon/client";

const BIN = fileURLToPath(new URL("../../../packages/cli/dist/bin.js", import.meta.url));

interface Run {
  proc: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function run(args: string[]): Run {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  return { proc, output: () => out, exited: new Promise((r) => proc.once("exit", (c) => r(c))) };
}

async function ports(n: number): Promise<number[]> {
  const s = new Set<number>();
  while (s.size < n) s.add(await freePort());
  return [...s];
}

interface CaughtMail {
  to: string[];
  subject: string;
  text: string;
  links: string[];
}

async function caught(uiPort: number): Promise<CaughtMail[]> {
  const r = await fetch(`http://127.0.0.1:${uiPort}/api/mails`, { signal: AbortSignal.timeout(5000) });
  return ((await r.json()) as { mails: CaughtMail[] }).mails;
}

describe("beckon up with its mail catcher, beckon invite, and a restart with the homeserver on another port", { timeout: 240_000 }, () => {
  const dir = tempDir("beckon-e2e-cli-");
  const runs: Run[] = [];
  after(async () => {
    for (const r of runs) {
      if (r.proc.exitCode === null && r.proc.signalCode === null) {
        r.proc.kill("SIGINT");
        const t = setTimeout(() => r.proc.kill("SIGKILL"), 15_000);
        await r.exited;
        clearTimeout(t);
      }
    }
    dir.cleanup();
  });

  async function up(p: number[]): Promise<Run> {
    const [hs, is, mail, ui] = p as [number, number, number, number];
    const r = run(["up", "--data-dir", dir.path, "--homeserver-port", String(hs), "--identity-port", String(is), "--mail-port", String(mail), "--mail-ui-port", String(ui)]);
    runs.push(r);
    await waitFor(() => r.output().includes("Ctrl-C stops everything") || r.proc.exitCode !== null, { timeoutMs: 60_000, what: "beckon up's banner" });
    assert.doesNotMatch(r.output(), /NOT RUNNING/, r.output());
    return r;
  }

  async function stop(r: Run): Promise<void> {
    r.proc.kill("SIGINT");
    assert.equal(await r.exited, 0, r.output());
    assert.match(r.output(), /beckon up: stopped\./);
  }

  let aliceToken = "";
  let aliceId = "";
  let roomId = "";
  let identityPort = 0;

  it("beckon invite sends a third-party invite; the catcher prints one line with the links and lists the mail", async () => {
    const p = await ports(4);
    identityPort = p[1]!;
    const r = await up(p);
    const hsUrl = `http://127.0.0.1:${p[0]}`;
    const alice = new MatrixClient({ baseUrl: hsUrl });
    await alice.register({ username: "alice", password: "correct horse battery" });
    aliceToken = alice.accessToken!;
    aliceId = alice.userId!;
    assert.equal(aliceId, `@alice:localhost:${p[0]}`);
    roomId = (await alice.createRoom({ name: "Catcher room" })).room_id;
    const inv = run(["invite", "--homeserver", hsUrl, "--identity-server", `http://127.0.0.1:${p[1]}`, "--token", aliceToken, roomId, "carol@example.org"]);
    runs.push(inv);
    assert.equal(await inv.exited, 0, inv.output());
    assert.match(inv.output(), /carol@example\.org: sent a third-party invite/);
    assert.doesNotMatch(inv.output(), new RegExp(aliceToken), "the token is never printed");
    await waitFor(() => /\[mail\] to carol@example\.org: ".*".*sign-ed25519\?token=/.test(r.output()), { timeoutMs: 15_000, what: `the catcher's console line in:\n${r.output()}` });
    const mails = await caught(p[3]!);
    assert.equal(mails.length, 1);
    assert.match(mails[0]!.subject + mails[0]!.text, /Catcher room/);
    assert.ok(mails[0]!.links.some((l) => l.includes("/sign-ed25519?")));
    const page = await (await fetch(`http://127.0.0.1:${p[3]}/`)).text();
    assert.match(page, /Catcher room/);
    await stop(r);
  });

  it("a second start with the homeserver on another port keeps its name, the users, the room and the mails; a bind still delivers", async () => {
    // The identity server keeps its port: its base URL is in the room state (key_validity_url) and in the mails.
    const fresh = await ports(4);
    const p = [fresh[0]!, identityPort, fresh[2]!, fresh[3]!].map((x, i) => (i !== 1 && x === identityPort ? fresh[1]! : x));
    const r = await up(p);
    assert.match(r.output(), /server name localhost:\d+/);
    const hsUrl = `http://127.0.0.1:${p[0]}`;
    const alice = new MatrixClient({ baseUrl: hsUrl, accessToken: aliceToken, userId: aliceId });
    assert.equal((await alice.whoami()).user_id, aliceId, "alice's account and token survived the move");
    assert.equal((await alice.getState(roomId)).filter((e) => e.type === "m.room.third_party_invite").length, 1);
    assert.equal((await caught(p[3]!)).length, 1, "the catcher kept its mail");
    const carol = new MatrixClient({ baseUrl: hsUrl });
    await carol.register({ username: "carol", password: "correct horse battery" });
    assert.equal(carol.userId!.split(":").slice(1).join(":"), aliceId.split(":").slice(1).join(":"), "the same server name");
    const identity = new IdentityClient({ baseUrl: `http://127.0.0.1:${p[1]}`, transport: carol.transport });
    await ensureIdentityToken(carol, identity);
    const clientSecret = `cli${Date.now().toString(36)}`;
    const { sid } = await identity.requestEmailToken({ email: "carol@example.org", clientSecret, sendAttempt: 1 });
    const link = await waitFor(
      async () => (await caught(p[3]!)).flatMap((m) => m.links).find((l) => l.includes("submitToken") && l.includes(`sid=${sid}`)),
      { timeoutMs: 15_000, what: "the validation mail" },
    );
    assert.equal((await fetch(link)).status, 200);
    await carol.bindThreepid({ sid, clientSecret, idServer: identity.serverName, idAccessToken: identity.accessToken! });
    await waitForInvite(carol, { roomId, timeoutMs: 30_000, pollMs: 5_000 });
    await carol.join(roomId);
    await stop(r);
  });
});
