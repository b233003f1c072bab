/**
 * Client config ("account data", https://spec.matrix.org/v1.18/client-server-api/#client-config):
 * global and per-room, stored with a stream position so `/sync` reports changes.
 */
import { MatrixError } from "@beckon/protocol";
import type { Notifier } from "@beckon/server-kit";
import type { AccountStore, RoomStore } from "../storage/index.js";
import { userChannel } from "./room-events.js";

export class AccountData {
  constructor(private readonly deps: { accounts: AccountStore; rooms: RoomStore; notifier: Notifier }) {}

  private async check(caller: string, userId: string, roomId: string): Promise<void> {
    if (caller !== userId) throw new MatrixError("M_FORBIDDEN", "Cannot access another user's account data", 403);
    if (roomId !== "" && !(await this.deps.rooms.getRoom(roomId))) throw new MatrixError("M_NOT_FOUND", "Unknown room", 404);
  }

  async get(caller: string, userId: string, roomId: string, type: string): Promise<Record<string, unknown>> {
    await this.check(caller, userId, roomId);
    const c = await this.deps.accounts.getAccountData(userId, roomId, type);
    if (!c) throw new MatrixError("M_NOT_FOUND", "Account data not found", 404);
    return c;
  }

  async set(caller: string, userId: string, roomId: string, type: string, content: Record<string, unknown>): Promise<void> {
    await this.check(caller, userId, roomId);
    if (type === "m.fully_read" || type === "m.push_rules") throw new MatrixError("M_BAD_JSON", `Cannot set ${type} through this API`, 400);
    await this.deps.accounts.setAccountData(userId, roomId, type, content);
    this.deps.notifier.notify(userChannel(userId));
  }
}
