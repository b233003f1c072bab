/**
 * The identity server's tables, as Kysely types. Timestamps are BIGINT milliseconds,
 * ids and JSON are TEXT (the same SQL runs on SQLite and PostgreSQL).
 */


export interface AccountsTable {
  user_id: string;
  created_ts: number;
  /** Fingerprint of the terms the user has accepted in full (null: none). */
  consent_version: string | null;
}

export interface AccessTokensTable {
  token: string;
  user_id: string;
  created_ts: number;
}

export interface AcceptedTermsTable {
  user_id: string;
  url: string;
}

/** Small named values: the lookup pepper, and its predecessor while rotating. */
export interface SettingsTable {
  name: string;
  value: string;
}

export interface SigningKeysTable {
  key_id: string;
  /** Unpadded standard base64 of the 32-byte ed25519 seed. */
  seed: string;
  created_ts: number;
}

export interface AssociationsTable {
  medium: string;
  /** The normal form (emails: NFKC + lower case). */
  address: string;
  mxid: string;
  ts: number;
  not_before: number;
  not_after: number;
  /** sha256 lookup hash at the current pepper (rewritten on rotation). */
  lookup_hash: string;
}

export interface ValidationSessionsTable {
  sid: string;
  medium: string;
  address: string;
  client_secret: string;
  token: string;
  send_attempt: number;
  next_link: string | null;
  validated_ts: number | null;
  created_ts: number;
  /** Last modification (creation, a new attempt, validation): sessions expire relative to it. */
  mtime: number;
}

export interface InvitesTable {
  token: string;
  medium: string;
  address: string;
  room_id: string;
  sender: string;
  /** Unpadded URL-safe base64, as Sydent stores ephemeral keys. */
  ephemeral_public_key: string;
  created_ts: number;
  expires_ts: number;
  delivered_ts: number | null;
  /** The store-invite request's room and sender details (JSON), for re-answering duplicates. */
  details: string;
}

export interface DeliveryQueueTable {
  mxid: string;
  token: string;
  medium: string;
  address: string;
  /** "pending" | "delivered" | "failed" */
  state: string;
  attempts: number;
  /** Due time; also the lease of a claimed row (a crashed worker's claim simply falls due again). */
  next_attempt_ts: number;
  last_error: string | null;
  created_ts: number;
  updated_ts: number;
}

export interface IsDatabase {
  is_accounts: AccountsTable;
  is_access_tokens: AccessTokensTable;
  is_accepted_terms: AcceptedTermsTable;
  is_settings: SettingsTable;
  is_signing_keys: SigningKeysTable;
  is_associations: AssociationsTable;
  is_validation_sessions: ValidationSessionsTable;
  is_invites: InvitesTable;
  is_delivery_queue: DeliveryQueueTable;
}

