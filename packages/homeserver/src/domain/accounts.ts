/**
 * Accounts and sessions: registration (`m.login.dummy`, Synapse's shared-secret admin form),
 * password login, access tokens (≥ 256 random bits, stored only as SHA-256), logout,
 * deactivation, profiles (https://spec.matrix.org/v1.18/client-server-api/#client-authentication).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { MatrixError, encodeBase64Url, isValidUserId, type UserId } from "@beckon/protocol";
import { isUniqueViolation, type Clock } from "@beckon/server-kit";
import type { AccountStore, UserRecord } from "../storage/index.js";
import { hashPassword, verifyPassword } from "./passwords.js";

/** The 401 body of a user-interactive-auth challenge; not an error in the spec's sense. */
export class UiaChallenge extends Error {
  constructor(readonly body: { flows: { stages: string[] }[]; session: string; params: Record<string, unknown>; completed?: string[]; errcode?: string; error?: string }) {
    super("user-interactive authentication required");
  }
}

export interface Principal {
  userId: string;
  deviceId: string;
}

export type Session = {
  user_id: UserId;
  access_token: string;
  device_id: string;
  home_server: string;
};

export interface AccountsDeps {
  store: AccountStore;
  serverName: string;
  clock: Clock;
  scryptN: number;
  registrationEnabled: boolean;
  sharedSecret?: string | undefined;
}

/** A localpart we hand out or accept: Synapse's grammar (lower-case). */
const LOCALPART = /^[a-z0-9._=\-/+]+$/;
const NONCE_LIFETIME_MS = 60_000;

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

function newToken(): string {
  return `bk_${encodeBase64Url(randomBytes(32))}`;
}

function newDeviceId(): string {
  const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const bytes = randomBytes(10);
  let s = "";
  for (const b of bytes) s += letters[b % 26];
  return s;
}

export class Accounts {
  constructor(private readonly deps: AccountsDeps) {}

  get serverName(): string {
    return this.deps.serverName;
  }

  /** The account store (filters and other per-user records the HTTP layer keeps). */
  get store(): AccountStore {
    return this.deps.store;
  }

  userIdFor(localpart: string): string {
    return `@${localpart}:${this.deps.serverName}`;
  }

  isLocalUser(userId: string): boolean {
    return userId.endsWith(`:${this.deps.serverName}`) && userId.startsWith("@") && userId.slice(1, -(this.deps.serverName.length + 1)).length > 0;
  }

  /** Validates a requested username (lower-cased as Synapse does). Throws M_INVALID_USERNAME / M_USER_IN_USE. */
  async checkUsername(username: string): Promise<string> {
    const localpart = username.toLowerCase();
    if (!LOCALPART.test(localpart)) {
      throw new MatrixError("M_INVALID_USERNAME", "User ID can only contain characters a-z, 0-9, or '=_-./+'", 400);
    }
    const userId = this.userIdFor(localpart);
    if (userId.length > 255) throw new MatrixError("M_INVALID_USERNAME", "User ID is too long", 400);
    if (await this.deps.store.getUser(userId)) throw new MatrixError("M_USER_IN_USE", "User ID already taken.", 400);
    return localpart;
  }

  /**
   * `POST register` (kind user). Without `auth` answers a UIA challenge for `m.login.dummy`
   * (after checking the username, as Synapse does).
   */
  async register(req: {
    username?: string | undefined;
    password?: string | undefined;
    auth?: { type?: string | undefined; session?: string | undefined } | undefined;
    device_id?: string | undefined;
    initial_device_display_name?: string | undefined;
    inhibit_login?: boolean | undefined;
    kind?: string | undefined;
  }): Promise<{ user_id: UserId; home_server: string; access_token?: string; device_id?: string }> {
    if (req.kind === "guest") throw new MatrixError("M_GUEST_ACCESS_FORBIDDEN", "Guest access is disabled", 403);
    if (!this.deps.registrationEnabled) throw new MatrixError("M_FORBIDDEN", "Registration has been disabled", 403);
    const localpart = req.username !== undefined ? await this.checkUsername(req.username) : undefined;
    if (!req.auth || req.auth.type === undefined) {
      throw new UiaChallenge({ flows: [{ stages: ["m.login.dummy"] }], session: req.auth?.session ?? encodeBase64Url(randomBytes(16)), params: {} });
    }
    if (req.auth.type !== "m.login.dummy") {
      throw new UiaChallenge({
        flows: [{ stages: ["m.login.dummy"] }],
        session: req.auth.session ?? encodeBase64Url(randomBytes(16)),
        params: {},
        errcode: "M_UNRECOGNIZED",
        error: `Unsupported authentication type ${req.auth.type}`,
      });
    }
    const user = await this.createUser(localpart, req.password, false);
    if (req.inhibit_login) return { user_id: user as UserId, home_server: this.deps.serverName };
    return this.createSession(user, req.device_id, req.initial_device_display_name);
  }

  /** Creates the account (random localpart when none given). Throws M_USER_IN_USE on a race. */
  async createUser(localpart: string | undefined, password: string | undefined, isAdmin: boolean, displayname?: string): Promise<string> {
    const lp = localpart ?? encodeBase64Url(randomBytes(9)).toLowerCase().replace(/[^a-z0-9]/g, "x");
    const userId = this.userIdFor(lp);
    const passwordHash = password !== undefined && password !== "" ? await hashPassword(password, this.deps.scryptN) : null;
    try {
      await this.deps.store.createUser({ userId, localpart: lp, passwordHash, displayname: displayname ?? lp, isAdmin, createdTs: this.deps.clock.now() });
    } catch (e) {
      if (isUniqueViolation(e)) throw new MatrixError("M_USER_IN_USE", "User ID already taken.", 400);
      throw e;
    }
    return userId;
  }

  async createSession(userId: string, deviceId: string | undefined, displayName: string | undefined): Promise<Session> {
    const token = newToken();
    const device = deviceId ?? newDeviceId();
    await this.deps.store.createSession({ userId, deviceId: device, tokenHash: hashToken(token), deviceDisplayName: displayName ?? null, now: this.deps.clock.now() });
    return { user_id: userId as UserId, access_token: token, device_id: device, home_server: this.deps.serverName };
  }

  /** `GET /_synapse/admin/v1/register`: a nonce valid for 60 s, stored (any process may redeem it). */
  async adminNonce(): Promise<{ nonce: string }> {
    if (!this.deps.sharedSecret) throw new MatrixError("M_FORBIDDEN", "Shared secret registration is not enabled", 400);
    const nonce = randomBytes(16).toString("hex");
    await this.deps.store.insertNonce(nonce, this.deps.clock.now());
    return { nonce };
  }

  /** `POST /_synapse/admin/v1/register`: HMAC-SHA1 over `nonce\0user\0password\0admin|notadmin[\0user_type]`. */
  async adminRegister(req: { nonce: string; username: string; password: string; admin?: boolean | undefined; displayname?: string | undefined; user_type?: string | undefined; mac: string }): Promise<Session> {
    const secret = this.deps.sharedSecret;
    if (!secret) throw new MatrixError("M_FORBIDDEN", "Shared secret registration is not enabled", 400);
    const hmac = createHmac("sha1", secret);
    hmac.update(req.nonce).update("\x00").update(req.username).update("\x00").update(req.password).update("\x00").update(req.admin ? "admin" : "notadmin");
    if (req.user_type) hmac.update("\x00").update(req.user_type);
    const want = hmac.digest();
    const got = Buffer.from(req.mac, "hex");
    const fresh = await this.deps.store.consumeNonce(req.nonce, this.deps.clock.now() - NONCE_LIFETIME_MS);
    if (!fresh) throw new MatrixError("M_UNKNOWN", "unrecognised nonce", 400);
    if (got.length !== want.length || !timingSafeEqual(got, want)) throw new MatrixError("M_FORBIDDEN", "HMAC incorrect", 403);
    const localpart = await this.checkUsername(req.username);
    const userId = await this.createUser(localpart, req.password, req.admin ?? false, req.displayname);
    return this.createSession(userId, undefined, undefined);
  }

  /** Resolves `user` (localpart or user ID) to a local user ID, or undefined. */
  resolveLoginUser(user: string): string | undefined {
    if (user.startsWith("@")) {
      if (!isValidUserId(user) || !this.isLocalUser(user)) return undefined;
      return `@${user.slice(1, user.length - this.deps.serverName.length - 1).toLowerCase()}:${this.deps.serverName}`;
    }
    return this.userIdFor(user.toLowerCase());
  }

  /** Checks a password for a user; throws 403 M_FORBIDDEN (or M_USER_DEACTIVATED). */
  async checkPassword(user: string, password: string): Promise<UserRecord> {
    const userId = this.resolveLoginUser(user);
    const rec = userId ? await this.deps.store.getUser(userId) : undefined;
    if (rec?.deactivated) throw new MatrixError("M_USER_DEACTIVATED", "This account has been deactivated", 403);
    const ok = rec?.passwordHash ? await verifyPassword(password, rec.passwordHash) : false;
    if (!rec || !ok) throw new MatrixError("M_FORBIDDEN", "Invalid username or password", 403);
    return rec;
  }

  /** `POST login` with `m.login.password`. */
  async login(req: {
    type: string;
    identifier?: { type: string; user?: string; medium?: string; address?: string } | undefined;
    user?: string | undefined;
    password?: string | undefined;
    device_id?: string | undefined;
    initial_device_display_name?: string | undefined;
  }): Promise<Session> {
    if (req.type !== "m.login.password") throw new MatrixError("M_UNKNOWN", "Unknown login type", 400);
    let user: string | undefined;
    if (req.identifier) {
      if (req.identifier.type === "m.id.thirdparty" || req.identifier.type === "m.id.phone") {
        // DECISIONS.md: HS-side 3PIDs are out of scope, so no account has one to log in with.
        throw new MatrixError("M_FORBIDDEN", "Logging in with a third-party identifier is not supported by this server", 403);
      }
      user = req.identifier.user;
    } else {
      user = req.user;
    }
    if (typeof user !== "string" || user === "") throw new MatrixError("M_MISSING_PARAM", "Missing parameter: identifier.user", 400);
    if (typeof req.password !== "string") throw new MatrixError("M_MISSING_PARAM", "Missing parameter: password", 400);
    const rec = await this.checkPassword(user, req.password);
    return this.createSession(rec.userId, req.device_id, req.initial_device_display_name);
  }

  /** Resolves an access token; throws 401 M_UNKNOWN_TOKEN. */
  async authenticate(token: string): Promise<Principal> {
    const owner = await this.deps.store.getTokenOwner(hashToken(token));
    if (!owner || owner.deactivated) throw new MatrixError("M_UNKNOWN_TOKEN", "Invalid access token passed.", 401, { soft_logout: false });
    return { userId: owner.userId, deviceId: owner.deviceId };
  }

  logout(token: string): Promise<void> {
    return this.deps.store.deleteSession(hashToken(token));
  }

  logoutAll(userId: string): Promise<void> {
    return this.deps.store.deleteAllSessions(userId);
  }

  /**
   * UIA for sensitive actions (deactivate): `m.login.password` for the caller, or
   * `m.login.dummy` for accounts without a password.
   */
  async checkUia(userId: string, auth: Record<string, unknown> | undefined): Promise<void> {
    const rec = await this.deps.store.getUser(userId);
    const hasPassword = Boolean(rec?.passwordHash);
    const flows = hasPassword ? [{ stages: ["m.login.password"] }] : [{ stages: ["m.login.dummy"] }];
    const session = typeof auth?.session === "string" ? auth.session : encodeBase64Url(randomBytes(16));
    if (!auth || typeof auth.type !== "string") throw new UiaChallenge({ flows, session, params: {} });
    if (!hasPassword && auth.type === "m.login.dummy") return;
    if (auth.type !== "m.login.password" || !hasPassword) {
      throw new UiaChallenge({ flows, session, params: {}, errcode: "M_UNRECOGNIZED", error: "Unsupported authentication type" });
    }
    const ident = auth.identifier as Record<string, unknown> | undefined;
    const user = typeof ident?.user === "string" ? ident.user : typeof auth.user === "string" ? auth.user : userId;
    if (this.resolveLoginUser(user) !== userId) throw new UiaChallenge({ flows, session, params: {}, errcode: "M_FORBIDDEN", error: "Invalid user" });
    const ok = typeof auth.password === "string" && rec?.passwordHash ? await verifyPassword(auth.password, rec.passwordHash) : false;
    if (!ok) throw new UiaChallenge({ flows, session, params: {}, errcode: "M_FORBIDDEN", error: "Invalid password" });
  }

  async deactivate(userId: string): Promise<void> {
    await this.deps.store.deactivateUser(userId);
  }

  async getUser(userId: string): Promise<UserRecord | undefined> {
    return this.deps.store.getUser(userId);
  }

  async setProfile(userId: string, p: { displayname?: string | null; avatarUrl?: string | null }): Promise<void> {
    await this.deps.store.setProfile(userId, p);
  }
}
