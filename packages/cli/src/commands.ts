/**
 * The smaller `beckon` commands: `homeserver` / `identity-server` (delegating to the server
 * packages), `generate-config`, `keygen` and `invite`.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { encodeBase64 } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { IdentityClient, MatrixClient, inviteByEmail } from "@beckon/client";
import { loadServerModule, type ServerKind } from "./servers.js";
import { sampleHomeserverConfig, sampleIdentityServerConfig } from "./sample-configs.js";

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const consoleIo: Io = { out: (l) => process.stdout.write(l + "\n"), err: (l) => process.stderr.write(l + "\n") };

/** `beckon homeserver …` / `beckon identity-server …`: the package's own CLI, in this process. */
export async function runServerCommand(kind: ServerKind, args: readonly string[], io: Io = consoleIo): Promise<number> {
  const mod = await loadServerModule(kind);
  if (!mod.runCli) {
    io.err(`beckon ${kind}: the ${mod.title} is not available: ${mod.missing ?? "unknown reason"}`);
    return 3;
  }
  return mod.runCli(args);
}

export const GENERATE_USAGE = `usage: beckon generate-config [--out <dir>] [--server-name <name>] [--identity-server-name <name>] [--force]

Writes commented sample configurations: <dir>/homeserver.yaml and <dir>/identity-server.yaml
(default dir: the current directory). Existing files are kept unless --force.`;

export function runGenerateConfig(args: readonly string[], io: Io = consoleIo, cwd = process.cwd()): number {
  const { values } = parseArgs({
    args: [...args],
    options: {
      out: { type: "string" },
      "server-name": { type: "string" },
      "identity-server-name": { type: "string" },
      force: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.out(GENERATE_USAGE);
    return 0;
  }
  const dir = resolve(cwd, values.out ?? ".");
  mkdirSync(dir, { recursive: true });
  const names = {
    ...(values["server-name"] ? { homeserverName: values["server-name"] } : {}),
    ...(values["identity-server-name"] ? { identityServerName: values["identity-server-name"] } : {}),
  };
  const files: [string, string][] = [
    [join(dir, "homeserver.yaml"), sampleHomeserverConfig(names)],
    [join(dir, "identity-server.yaml"), sampleIdentityServerConfig(names)],
  ];
  const clash = files.filter(([f]) => existsSync(f)).map(([f]) => f);
  if (clash.length && !values.force) {
    io.err(`beckon generate-config: ${clash.join(" and ")} already exist(s); pass --force to overwrite`);
    return 1;
  }
  for (const [f, text] of files) {
    writeFileSync(f, text);
    io.out(`wrote ${f}`);
  }
  io.out("Edit them, then run: beckon homeserver --config homeserver.yaml  and  beckon identity-server --config identity-server.yaml");
  return 0;
}

export interface GeneratedKey {
  /** `ed25519:a_XXXX` */
  keyId: string;
  /** 32-byte seed, unpadded standard base64 (what the servers store). */
  seed: string;
  publicKey: string;
}

/** A fresh ed25519 signing key with a Synapse-style version (`a_` + 4 characters). */
export function generateSigningKey(random: (n: number) => Uint8Array = (n) => new Uint8Array(randomBytes(n))): GeneratedKey {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  let version = "a_";
  for (const b of random(4)) version += alphabet[b % alphabet.length];
  const seed = random(32);
  return { keyId: `ed25519:${version}`, seed: encodeBase64(seed), publicKey: encodeBase64(nodeCryptoProvider.ed25519PublicKeySync(seed)) };
}

export const KEYGEN_USAGE = `usage: beckon keygen [--json]

Prints a fresh ed25519 signing key as one line "ed25519 <version> <seed>" (the Synapse
signing.key format: unpadded base64 of the 32-byte seed), or as JSON with --json.
The public key goes to stderr. Beckon's servers create and keep their own key in their database
on first start; use this for tooling or to prepare a key.`;

export function runKeygen(args: readonly string[], io: Io = consoleIo): number {
  const { values } = parseArgs({ args: [...args], options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    io.out(KEYGEN_USAGE);
    return 0;
  }
  const key = generateSigningKey();
  if (values.json) io.out(JSON.stringify({ key_id: key.keyId, seed: key.seed, public_key: key.publicKey }));
  else {
    io.out(`ed25519 ${key.keyId.slice("ed25519:".length)} ${key.seed}`);
    io.err(`public key (${key.keyId}): ${key.publicKey}`);
  }
  return 0;
}

export const INVITE_USAGE = `usage: beckon invite --homeserver <url> --token <access token> [--identity-server <url>] [--accept-terms] <room> <email>

Invites <email> to <room> (a room ID !…:server or an alias #…:server) the way a client does:
gets an identity-server token through OpenID, looks the address up, and invites the bound
user or sends a third-party invite (the identity server mails the address).
  --homeserver       default http://127.0.0.1:8008
  --token            the inviter's access token (or $BECKON_TOKEN)
  --identity-server  default http://127.0.0.1:8090
  --accept-terms     accept the identity server's terms if it asks`;

export async function runInvite(args: readonly string[], io: Io = consoleIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    allowPositionals: true,
    options: {
      homeserver: { type: "string" },
      token: { type: "string" },
      "identity-server": { type: "string" },
      "accept-terms": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.out(INVITE_USAGE);
    return 0;
  }
  const token = values.token ?? env.BECKON_TOKEN;
  const [room, email, ...extra] = positionals;
  if (!token || !room || !email || extra.length) {
    io.err(`beckon invite: ${!token ? "--token is required" : "give exactly a room and an email address"}\n\n${INVITE_USAGE}`);
    return 2;
  }
  const matrix = new MatrixClient({ baseUrl: values.homeserver ?? "http://127.0.0.1:8008", accessToken: token });
  const identity = new IdentityClient({ baseUrl: values["identity-server"] ?? "http://127.0.0.1:8090", transport: matrix.transport });
  try {
    const me = await matrix.whoami();
    matrix.userId = me.user_id;
    const roomId = room.startsWith("#") ? (await matrix.resolveAlias(room)).room_id : room;
    const outcome = await inviteByEmail(matrix, roomId, email, { identity, acceptTerms: values["accept-terms"] === true });
    const what =
      outcome.status === "invited"
        ? `invited ${outcome.userId ?? "?"} (the address is bound to that user)`
        : outcome.status === "already-member"
          ? `${outcome.userId ?? "the user"} is already in the room`
          : `sent a third-party invite; the identity server mails ${email}`;
    io.out(`${email}: ${what}`);
    return 0;
  } catch (e) {
    io.err(`beckon invite: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}
