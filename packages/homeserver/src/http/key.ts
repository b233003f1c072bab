/**
 * `GET /_matrix/key/v2/server` (and `/_matrix/key/v2/server/`, which Sydent fetches): the
 * server's signing key, self-signed (https://spec.matrix.org/v1.18/server-server-api/#retrieving-server-keys).
 * Identity servers use it to verify the homeserver's signed `3pid/unbind`.
 */
import type { Router } from "@beckon/server-kit";
import { encodeBase64, serverKeys, signJson, type ServerKeysResponse } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import type { ThreepidDeps } from "../domain/threepid-deps.js";

const DAY_MS = 24 * 3_600_000;

/** The signed key document as of `now`. */
export async function serverKeyDocument(deps: Pick<ThreepidDeps, "serverName" | "signingKey" | "config">, now: number): Promise<ServerKeysResponse> {
  const publicKey = encodeBase64(nodeCryptoProvider.ed25519PublicKeySync(deps.signingKey.seed));
  const doc = {
    server_name: deps.serverName,
    valid_until_ts: now + (deps.config.keyValidityMs ?? DAY_MS),
    verify_keys: { [deps.signingKey.keyId]: { key: publicKey } },
    old_verify_keys: {},
  };
  return signJson(doc, deps.serverName, deps.signingKey.keyId, deps.signingKey.seed, nodeCryptoProvider);
}

export function registerKeyRoutes<P, DB>(router: Router<P>, deps: ThreepidDeps<DB>): void {
  router.add(serverKeys, () => serverKeyDocument(deps as unknown as ThreepidDeps, deps.clock.now()));
}
