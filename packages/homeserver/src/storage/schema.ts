/**
 * The homeserver's tables (both engines). JSON is stored as TEXT, timestamps as BIGINT ms,
 * booleans as INTEGER 0/1. Room events are the source of truth: `hs_current_state` and
 * `hs_memberships` are projections that {@link RoomStore.rebuildRoomProjections} recomputes.
 */
export interface SettingsTable {
  name: string;
  value: string;
}

export interface SigningKeysTable {
  key_id: string;
  /** Unpadded base64 ed25519 seed. */
  seed: string;
  created_ts: number;
}

export interface UsersTable {
  user_id: string;
  localpart: string;
  password_hash: string | null;
  displayname: string | null;
  avatar_url: string | null;
  is_admin: number;
  deactivated: number;
  created_ts: number;
}

export interface DevicesTable {
  user_id: string;
  device_id: string;
  display_name: string | null;
  created_ts: number;
}

export interface AccessTokensTable {
  /** Hex SHA-256 of the token: the token itself is never stored. */
  token_hash: string;
  user_id: string;
  device_id: string;
  created_ts: number;
}

export interface AdminNoncesTable {
  nonce: string;
  created_ts: number;
}

export interface RoomsTable {
  room_id: string;
  room_version: string;
  creator: string;
  created_ts: number;
  /** The room's one forward extremity (single-server rooms form a chain). */
  latest_event_id: string;
  latest_depth: number;
  latest_stream: number;
}

export interface EventsTable {
  event_id: string;
  stream_ordering: number;
  room_id: string;
  type: string;
  state_key: string | null;
  sender: string;
  origin_server_ts: number;
  /** The full PDU (hashes, signatures; no `unsigned`). */
  json: string;
  /** Local `unsigned` additions: `prev_content`, `prev_sender`, `replaces_state`. */
  unsigned_json: string | null;
  /** For `unsigned.transaction_id` on the sender's own device. */
  txn_device_id: string | null;
  txn_id: string | null;
}

export interface StreamTable {
  id: number;
  pos: number;
}

export interface CurrentStateTable {
  room_id: string;
  type: string;
  state_key: string;
  event_id: string;
}

export interface MembershipsTable {
  room_id: string;
  user_id: string;
  membership: string;
  event_id: string;
  stream_ordering: number;
  forgotten: number;
}

export interface TxnsTable {
  user_id: string;
  device_id: string;
  txn_id: string;
  event_id: string;
  created_ts: number;
}

export interface AliasesTable {
  alias: string;
  room_id: string;
  creator: string;
  created_ts: number;
}

export interface AccountDataTable {
  user_id: string;
  /** "" for global account data. */
  room_id: string;
  type: string;
  content: string;
  /** Position in the event stream when last set (sync reports changes after a token). */
  stream_ordering: number;
}

export interface FiltersTable {
  user_id: string;
  filter_id: string;
  json: string;
}

export interface HomeserverDB {
  hs_filters: FiltersTable;
  hs_account_data: AccountDataTable;
  hs_settings: SettingsTable;
  hs_signing_keys: SigningKeysTable;
  hs_users: UsersTable;
  hs_devices: DevicesTable;
  hs_access_tokens: AccessTokensTable;
  hs_admin_nonces: AdminNoncesTable;
  hs_rooms: RoomsTable;
  hs_events: EventsTable;
  hs_stream: StreamTable;
  hs_current_state: CurrentStateTable;
  hs_memberships: MembershipsTable;
  hs_txns: TxnsTable;
  hs_aliases: AliasesTable;
}
