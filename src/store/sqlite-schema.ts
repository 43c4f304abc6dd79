/**
 * The SQLite schema (docs/FORMATS.md §9) and the connection settings both
 * connections share. Tables are STRICT so a wrong type is refused by the
 * database rather than silently coerced, and CHECK constraints restate the
 * domain rules that are cheap to state, as a last line of defence behind the
 * callers' validation. The schema is versioned with `PRAGMA user_version`;
 * a file from a newer custos is refused rather than written to. Only the
 * writer thread creates or migrates the schema.
 */
import type Database from "better-sqlite3";
import { APPROVALS_SCHEMA } from "./sqlite-approvals.js";
import type { WriterOptions } from "./sqlite-protocol.js";
import { REVIEWS_SCHEMA } from "./sqlite-reviews.js";
import { backfillSubtrees, SUBTREES_SCHEMA } from "./sqlite-subtrees.js";
import { addTokenColumns } from "./sqlite-tokens.js";

export const SCHEMA_VERSION = 8;

const SCHEMA_V1 = `
CREATE TABLE seal_config (
  id              INTEGER PRIMARY KEY CHECK (id = 1),
  init_id         TEXT    NOT NULL,
  threshold       INTEGER NOT NULL CHECK (threshold >= 1),
  shares          INTEGER NOT NULL CHECK (shares >= threshold),
  custodians      TEXT    NOT NULL,
  kcv             TEXT    NOT NULL,
  root_generation INTEGER NOT NULL,
  created_at      TEXT    NOT NULL
) STRICT;

CREATE TABLE sys_secrets (
  name   TEXT PRIMARY KEY,
  sealed BLOB NOT NULL
) STRICT;

CREATE TABLE keys (
  name                   TEXT PRIMARY KEY,
  protection             TEXT    NOT NULL CHECK (protection IN ('software', 'tpm', 'threshold')),
  state                  TEXT    NOT NULL
                         CHECK (state IN ('enabled', 'disabled', 'pending-destruction', 'destroyed')),
  latest_version         INTEGER NOT NULL CHECK (latest_version >= 1),
  min_decryption_version INTEGER NOT NULL CHECK (min_decryption_version >= 1),
  rotation_period_s      INTEGER CHECK (rotation_period_s > 0),
  deletion_at            TEXT,
  created_at             TEXT    NOT NULL,
  updated_at             TEXT    NOT NULL,
  CHECK (min_decryption_version <= latest_version)
) STRICT;

CREATE TABLE key_versions (
  name            TEXT    NOT NULL REFERENCES keys (name),
  version         INTEGER NOT NULL CHECK (version >= 1),
  state           TEXT    NOT NULL CHECK (state IN ('enabled', 'destroyed')),
  sealed_material BLOB    NOT NULL,
  created_at      TEXT    NOT NULL,
  PRIMARY KEY (name, version)
) STRICT, WITHOUT ROWID;

CREATE TABLE tokens (
  hash       TEXT PRIMARY KEY,
  principal  TEXT NOT NULL,
  roles      TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT
) STRICT;

CREATE TABLE audit_events (
  seq       INTEGER PRIMARY KEY CHECK (seq >= 1),
  time      TEXT NOT NULL,
  principal TEXT NOT NULL,
  operation TEXT NOT NULL,
  key_name  TEXT,
  decision  TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'error')),
  purpose   TEXT,
  event     TEXT NOT NULL,
  hash      BLOB NOT NULL CHECK (length(hash) = 32),
  -- RFC 9162 leaf hash of the canonical event: SHA-256(0x00 ‖ event).
  leaf      BLOB NOT NULL CHECK (length(leaf) = 32)
) STRICT;

-- Every context entry of every event, by its keyed HMAC (which covers the
-- context key's name), so "all events about patient X" is an index lookup
-- without the log holding X.
CREATE TABLE audit_subjects (
  hmac TEXT    NOT NULL,
  seq  INTEGER NOT NULL REFERENCES audit_events (seq),
  PRIMARY KEY (hmac, seq)
) STRICT, WITHOUT ROWID;

-- Signed tree heads of the Merkle log over audit_events (docs/FORMATS.md §8.1).
CREATE TABLE audit_heads (
  size      INTEGER PRIMARY KEY CHECK (size >= 1),
  root      BLOB    NOT NULL CHECK (length(root) = 32),
  timestamp INTEGER NOT NULL,
  signature BLOB    NOT NULL CHECK (length(signature) = 64)
) STRICT;

-- Audit queries filter on one column and page in seq order, so each index
-- ends in seq: the filter and the ORDER BY are then served by one index.
CREATE INDEX audit_events_time      ON audit_events (time, seq);
CREATE INDEX audit_events_principal ON audit_events (principal, seq);
CREATE INDEX audit_events_key       ON audit_events (key_name, seq);
CREATE INDEX audit_events_operation ON audit_events (operation, seq);
CREATE INDEX audit_events_decision  ON audit_events (decision, seq);
CREATE INDEX audit_events_purpose   ON audit_events (purpose, seq);
`;

// Version 2: witnesses' countersignatures on signed heads (docs/FORMATS.md §8.3).
const SCHEMA_V2 = `
CREATE TABLE audit_cosignatures (
  witness_key BLOB    NOT NULL CHECK (length(witness_key) = 32),
  size        INTEGER NOT NULL REFERENCES audit_heads (size),
  witness     TEXT    NOT NULL,
  root        BLOB    NOT NULL CHECK (length(root) = 32),
  timestamp   INTEGER NOT NULL,
  cosigned_at INTEGER NOT NULL,
  signature   BLOB    NOT NULL CHECK (length(signature) = 64),
  PRIMARY KEY (witness_key, size)
) STRICT, WITHOUT ROWID;
CREATE INDEX audit_cosignatures_size ON audit_cosignatures (size);
`;

// Version 3: the TPM protection level. SQLite cannot alter a CHECK, so a file
// made by version 1 or 2 gets its keys table rebuilt (SQLite's documented
// procedure: foreign keys off, copy, drop, rename, foreign_key_check). A fresh
// file is made with the new CHECK in SCHEMA_V1 directly.
const KEYS_V3 = SCHEMA_V1.slice(
  SCHEMA_V1.indexOf("CREATE TABLE keys ("),
  SCHEMA_V1.indexOf(") STRICT;", SCHEMA_V1.indexOf("CREATE TABLE keys (")) + 9,
);

function rebuildKeysTable(db: Database.Database, toVersion: number): void {
  db.pragma("foreign_keys = OFF");
  try {
    db.transaction(() => {
      db.exec(KEYS_V3.replace("CREATE TABLE keys (", "CREATE TABLE keys_new ("));
      db.exec(
        "INSERT INTO keys_new SELECT * FROM keys; DROP TABLE keys; ALTER TABLE keys_new RENAME TO keys;",
      );
      const broken = db.pragma("foreign_key_check") as unknown[];
      if (broken.length)
        throw new Error(`schema migration to version ${toVersion} broke foreign keys; nothing was changed`);
      db.pragma(`user_version = ${toVersion}`);
    }).immediate();
  } finally {
    db.pragma("foreign_keys = ON");
  }
}

function migrateToV3(db: Database.Database): void {
  rebuildKeysTable(db, 3);
}

// Version 4: break-glass reviews (src/store/sqlite-reviews.ts). A new table only.
function migrateToV4(db: Database.Database): void {
  db.transaction(() => {
    db.exec(REVIEWS_SCHEMA);
    db.pragma("user_version = 4");
  }).immediate();
}

// Version 5: the threshold protection level (docs/FORMATS.md §11): the keys
// table's CHECK gains 'threshold', rebuilt as for version 3.
function migrateToV5(db: Database.Database): void {
  rebuildKeysTable(db, 5);
}

// Version 6: approval requests and their approvals (src/store/sqlite-approvals.ts). New tables only.
function migrateToV6(db: Database.Database): void {
  db.transaction(() => {
    db.exec(APPROVALS_SCHEMA);
    db.pragma("user_version = 6");
  }).immediate();
}

// Version 7: tokens remember their last use and the policy grant they were minted under (src/store/sqlite-tokens.ts).
function migrateToV7(db: Database.Database): void {
  db.transaction(() => {
    addTokenColumns(db);
    db.pragma("user_version = 7");
  }).immediate();
}

// Version 8: the Merkle log's stored subtrees (src/store/sqlite-subtrees.ts),
// backfilled from the events already in the file, in the same transaction.
function migrateToV8(db: Database.Database): void {
  db.transaction(() => {
    db.exec(SUBTREES_SCHEMA);
    backfillSubtrees(db);
    db.pragma("user_version = 8");
  }).immediate();
}

/** Settings for the writer connection: WAL, and a commit is durable when it returns. */
export function configureWriter(db: Database.Database, options: WriterOptions): void {
  const mode = db.pragma("journal_mode = WAL", { simple: true });
  if (mode !== "wal") throw new Error(`SQLite refused WAL mode (journal_mode is ${String(mode)})`);
  // FULL (not NORMAL) because in WAL mode NORMAL may lose the last commits on
  // power loss, and a caller told "done" must find its audit event afterwards.
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  // Deleted or shrunk content (destroyed key material) is overwritten with
  // zeros in the page instead of lingering in free space.
  db.pragma("secure_delete = ON");
  db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs))}`);
  // A cap makes an over-full database fail exactly like a full disk (SQLITE_FULL).
  if (options.maxPages !== undefined)
    db.pragma(`max_page_count = ${Math.max(1, Math.trunc(options.maxPages))}`);
}

/** Creates the schema in a fresh file, accepts the current one, refuses anything else. */
export function migrate(db: Database.Database): void {
  // Read first: a file that is already current needs no write lock, so the
  // writer can start even while another connection holds the lock.
  const version = db.pragma("user_version", { simple: true });
  if (version === SCHEMA_VERSION) return;
  if (version === 1) {
    db.transaction(() => {
      db.exec(SCHEMA_V2);
      db.pragma("user_version = 2");
    }).immediate();
  }
  if (version === 1 || version === 2) migrateToV3(db);
  if (version === 1 || version === 2 || version === 3) migrateToV4(db);
  if (version === 1 || version === 2 || version === 3 || version === 4) migrateToV5(db);
  if (typeof version === "number" && version >= 1 && version <= 5) migrateToV6(db);
  if (typeof version === "number" && version >= 1 && version <= 6) migrateToV7(db);
  if (typeof version === "number" && version >= 1 && version <= 7) {
    migrateToV8(db);
    return;
  }
  if (version !== 0) {
    throw new Error(
      `database schema version ${String(version)} is not supported (expected ${SCHEMA_VERSION})`,
    );
  }
  db.transaction(() => {
    const tables = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get() as {
      n: number;
    };
    if (tables.n !== 0)
      throw new Error("database has tables but no custos schema version; refusing to use it");
    db.exec(SCHEMA_V1);
    db.exec(SCHEMA_V2);
    db.exec(REVIEWS_SCHEMA);
    db.exec(APPROVALS_SCHEMA);
    addTokenColumns(db);
    db.exec(SUBTREES_SCHEMA);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
