/**
 * The e2e harness: Beckon's real servers as real processes, started through the `beckon` CLI
 * on free 127.0.0.1 ports, mail to a real SMTP receiver, SQLite or PostgreSQL.
 *
 * Two modes: `up` runs `beckon up` (one process tree, as a developer would), `separate` writes
 * the same configs (`beckon up --configs-only`) and runs `beckon homeserver` and
 * `beckon identity-server` as two processes a test can stop, SIGKILL and restart on their own.
 */
import {
  beckonUpArgs,
  createTempDatabase,
  distinctFreePorts,
  generateBeckonConfigs,
  readinessUrl,
  spawnBeckon,
  spawnBeckonServer,
  startSmtpReceiver,
  tempDir,
  waitFor,
  waitUntilServing,
  type Engine,
  type LoggedProcess,
  type ReceivedMail,
  type SmtpReceiver,
  type TempDatabase,
} from "@beckon/test-support";
import { readFileSync } from "node:fs";
import { IdentityClient, MatrixClient, ensureIdentityToken } from "@beckon/client";

export type { Engine };

export type Proc = LoggedProcess;

export interface StackOptions {
  engine: Engine;
  mode: "up" | "separate";
}

export interface Stack {
  readonly hsUrl: string;
  readonly isUrl: string;
  readonly hsPort: number;
  readonly isPort: number;
  readonly hsName: string;
  readonly smtp: SmtpReceiver;
  readonly dataDir: string;
  /** Separate mode only. */
  stopServer(which: "homeserver" | "identity-server", signal?: NodeJS.Signals): Promise<void>;
  startServer(which: "homeserver" | "identity-server"): Promise<void>;
  /** All output so far (for failure messages). */
  logs(): string;
  /** Separate mode: everything a server process has written (its JSON log lines), across restarts. */
  serverLog(which: "homeserver" | "identity-server"): string;
  close(): Promise<void>;
}

const STARTUP_MS = 60_000;

export async function startStack(opts: StackOptions): Promise<Stack> {
  const dir = tempDir("beckon-e2e-");
  const smtp = await startSmtpReceiver();
  let db: TempDatabase | undefined;
  const procs: Proc[] = [];
  const all: Proc[] = [];
  try {
    if (opts.engine === "postgres") db = await createTempDatabase("beckon_e2e");
    const [hsPort, isPort] = (await distinctFreePorts(2)) as [number, number];
    const hsUrl = `http://127.0.0.1:${hsPort}`;
    const isUrl = `http://127.0.0.1:${isPort}`;
    const placement = { dir: dir.path, hsPort, isPort, smtpUrl: smtp.url, databaseUrl: db?.url };
    const servers = new Map<"homeserver" | "identity-server", Proc>();

    const startServer = async (which: "homeserver" | "identity-server") => {
      const p = spawnBeckonServer(which, dir.path);
      servers.set(which, p);
      all.push(p);
      procs.push(p);
      const base = which === "homeserver" ? hsUrl : isUrl;
      await waitUntilServing(readinessUrl(which, base), p, `the ${which} at ${base}`, { timeoutMs: STARTUP_MS });
    };

    if (opts.mode === "up") {
      const up = spawnBeckon("beckon up", ["up", ...beckonUpArgs(placement)], `${dir.path}/up.out`);
      all.push(up);
      procs.push(up);
      await waitFor(() => up.output().includes("Ctrl-C stops everything") || !up.alive(), { timeoutMs: STARTUP_MS, what: "beckon up's banner" });
      if (!up.alive()) throw new Error(`beckon up exited:\n${up.output()}`);
      if (/NOT RUNNING/.test(up.output())) throw new Error(`beckon up did not start everything:\n${up.output()}`);
    } else {
      await generateBeckonConfigs(placement);
      await Promise.all([startServer("identity-server"), startServer("homeserver")]);
    }

    return {
      hsUrl,
      isUrl,
      hsPort,
      isPort,
      hsName: `localhost:${hsPort}`,
      smtp,
      dataDir: dir.path,
      async stopServer(which, signal = "SIGTERM") {
        const p = servers.get(which);
        if (!p) throw new Error(`${which} is not a separate process in this stack`);
        if (p.alive()) p.proc.kill(signal);
        await Promise.race([p.exited, new Promise((_, rej) => setTimeout(() => rej(new Error(`${which} did not stop`)), 20_000))]);
        servers.delete(which);
      },
      startServer,
      logs: () => all.map((p) => `=== ${p.name}\n${p.output().slice(-20_000)}`).join("\n"),
      serverLog(which) {
        try {
          return readFileSync(`${dir.path}/${which}.out`, "utf8");
        } catch {
          return "";
        }
      },
      async close() {
        // Every child, even on failure: beckon up gets SIGINT (it stops its own children), the rest SIGTERM, then SIGKILL.
        await Promise.all(
          procs.map(async (p) => {
            if (!p.alive()) return;
            p.proc.kill(p.name === "beckon up" ? "SIGINT" : "SIGTERM");
            const t = setTimeout(() => p.proc.kill("SIGKILL"), 15_000);
            await p.exited;
            clearTimeout(t);
          }),
        );
        await smtp.close();
        await db?.drop().catch(() => {});
        dir.cleanup();
      },
    };
  } catch (e) {
    for (const p of procs) if (p.alive()) p.proc.kill("SIGKILL");
    await smtp.close();
    await db?.drop().catch(() => {});
    dir.cleanup();
    throw e;
  }
}

let userCounter = 0;

/** Registers a fresh user (unique local part) through the SDK. */
export async function registerUser(stack: Stack, name: string): Promise<MatrixClient> {
  const client = new MatrixClient({ baseUrl: stack.hsUrl });
  await client.register({ username: `${name}${++userCounter}${Date.now().toString(36)}`, password: "correct horse battery" });
  return client;
}

/** An identity client for `user` with a token obtained via OpenID. */
export async function identityFor(stack: Stack, user: MatrixClient): Promise<IdentityClient> {
  const identity = new IdentityClient({ baseUrl: stack.isUrl, transport: user.transport });
  await ensureIdentityToken(user, identity);
  return identity;
}

/** The links of a mail's text part. */
export function mailLinks(mail: ReceivedMail): string[] {
  const text = mail.text || mail.html;
  return [...text.matchAll(/https?:\/\/[^\s<>"']+/g)].map((m) => m[0].replace(/&amp;/g, "&").replace(/[.,;:!?)]+$/, ""));
}

/** Validates `email` for `user` at the identity server by the mailed link; returns the session. */
export async function validateByMail(stack: Stack, identity: IdentityClient, email: string): Promise<{ sid: string; clientSecret: string }> {
  const clientSecret = `secret${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
  const before = stack.smtp.mails.length;
  const { sid } = await identity.requestEmailToken({ email, clientSecret, sendAttempt: 1 });
  const [mail] = await stack.smtp.waitForMails(1, {
    timeoutMs: 15_000,
    match: (m) => stack.smtp.mails.indexOf(m) >= before && m.to.includes(email) && mailLinks(m).some((l) => l.includes("submitToken")),
  });
  const link = mailLinks(mail!).find((l) => l.includes("submitToken") && l.includes(encodeURIComponent(clientSecret)) && l.includes(`sid=${encodeURIComponent(sid)}`));
  if (!link) throw new Error(`no validation link for sid ${sid} in: ${mail!.text}`);
  const r = await fetch(link, { signal: AbortSignal.timeout(10_000) });
  const body = await r.text();
  if (r.status !== 200) throw new Error(`the validation link answered ${r.status}: ${body.slice(0, 300)}`);
  return { sid, clientSecret };
}

/** Polls a member's state until `membership` (bounded). */
export async function waitForMembership(client: MatrixClient, roomId: string, userId: string, membership: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      try {
        const c = await client.getStateEvent(roomId, "m.room.member", userId);
        return c["membership"] === membership;
      } catch {
        return false;
      }
    },
    { timeoutMs, intervalMs: 100, what: `${userId} to be ${membership} in ${roomId}` },
  );
}
