/**
 * `beckon up` for the interop tests: a real process tree on free 127.0.0.1 ports, mail to a
 * real SMTP receiver, optional extra server settings through a beckon.yaml.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, startSmtpReceiver, tempDir, waitFor, type ReceivedMail, type SmtpReceiver } from "@beckon/test-support";

const BIN = fileURLToPath(new URL("../../../packages/cli/dist/bin.js", import.meta.url));

export interface UpStack {
  hsUrl: string;
  isUrl: string;
  /** `127.0.0.1:P`: what matrix-js-sdk sends as `id_server`. */
  isHost: string;
  /** The mail catcher's page (only when `catcher` was asked for). */
  mailUiUrl?: string;
  smtp?: SmtpReceiver;
  output(): string;
  close(): Promise<void>;
}

export async function startUp(opts: { beckonYaml?: Record<string, unknown>; catcher?: boolean } = {}): Promise<UpStack> {
  const dir = tempDir("beckon-interop-");
  const ports = new Set<number>();
  while (ports.size < 4) ports.add(await freePort());
  const [hs, is, mail, ui] = [...ports] as [number, number, number, number];
  const smtp = opts.catcher ? undefined : await startSmtpReceiver();
  const args = ["up", "--data-dir", dir.path, "--homeserver-port", String(hs), "--identity-port", String(is)];
  if (smtp) args.push("--smtp-url", smtp.url);
  else args.push("--mail-port", String(mail), "--mail-ui-port", String(ui));
  if (opts.beckonYaml) {
    const file = join(dir.path, "beckon.yaml");
    // JSON is YAML: no YAML library needed here.
    writeFileSync(file, JSON.stringify(opts.beckonYaml, null, 2));
    args.push("--config", file);
  }
  const proc: ChildProcess = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const close = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGINT");
      const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(t);
    }
    await smtp?.close();
    dir.cleanup();
  };
  try {
    await waitFor(() => out.includes("Ctrl-C stops everything") || proc.exitCode !== null, { timeoutMs: 60_000, what: "beckon up's banner" });
    if (proc.exitCode !== null || /NOT RUNNING/.test(out)) throw new Error(`beckon up did not start everything:\n${out}`);
  } catch (e) {
    await close();
    throw e;
  }
  return {
    hsUrl: `http://127.0.0.1:${hs}`,
    isUrl: `http://127.0.0.1:${is}`,
    isHost: `127.0.0.1:${is}`,
    ...(opts.catcher ? { mailUiUrl: `http://127.0.0.1:${ui}` } : {}),
    ...(smtp ? { smtp } : {}),
    output: () => out,
    close,
  };
}

export function mailLinks(mail: ReceivedMail): string[] {
  return [...(mail.text || mail.html).matchAll(/https?:\/\/[^\s<>"']+/g)].map((m) => m[0].replace(/&amp;/g, "&").replace(/[.,;:!?)]+$/, ""));
}
