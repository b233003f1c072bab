/**
 * Opens the homeserver's database (SQLite or PostgreSQL), runs the migrations and returns the
 * stores. Only the composition root (`app.ts` / `main.ts`) calls this.
 */
import { openDatabase, runMigrations, type DatabaseHandle, type Migration } from "@beckon/server-kit";
import { createAccountStore, type AccountStore } from "./accounts-store.js";
import { HS_MIGRATIONS_TABLE, storageMigrations } from "./migrations.js";
import { createRoomStore, type RoomStore } from "./rooms-store.js";
import type { HomeserverDB } from "./schema.js";

export interface HomeserverStorage {
  handle: DatabaseHandle<HomeserverDB>;
  accounts: AccountStore;
  rooms: RoomStore;
  close(): Promise<void>;
}

export async function openHomeserverStorage(opts: {
  url: string;
  schema?: string;
  /** Appended after the core migrations (the 3PID module's tables). */
  extraMigrations?: readonly Migration[];
  /** Where a failing SQLite checkpoint thread is reported. */
  onSqliteCheckpointError?: (message: string) => void;
}): Promise<HomeserverStorage> {
  const handle = await openDatabase<HomeserverDB>({
    url: opts.url,
    ...(opts.schema ? { schema: opts.schema } : {}),
    ...(opts.onSqliteCheckpointError ? { onSqliteCheckpointError: opts.onSqliteCheckpointError } : {}),
  });
  try {
    await runMigrations(handle, [...storageMigrations, ...(opts.extraMigrations ?? [])], HS_MIGRATIONS_TABLE);
  } catch (e) {
    await handle.close();
    throw e;
  }
  return {
    handle,
    accounts: createAccountStore(handle.db),
    rooms: createRoomStore(handle.db, handle.engine),
    close: () => handle.close(),
  };
}

export type { AccountStore, RoomStore };
export * from "./accounts-store.js";
export * from "./rooms-store.js";
export type { HomeserverDB } from "./schema.js";
