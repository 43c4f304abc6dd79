/**
 * A witness's own durable record (docs/FORMATS.md §8.3): which key each log
 * URL was pinned to, every head it countersigned with its countersignature,
 * and the evidence of forks it has seen. SQLite (better-sqlite3) in WAL mode
 * with synchronous=FULL rather than JSON files, because accepting a head is
 * several facts that must land together — the head, its countersignature and
 * with them the new "last seen" — and one transaction gives that without a
 * journal of our own. A witness writes a few rows per poll, so the synchronous
 * API on the main thread is fine here (the node's store needs a writer
 * thread; a witness does not). Evidence is append-only: nothing here deletes it.
 */
import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { b64u } from "../crypto/bytes.js";
import type { TreeHeadRecord } from "../store/store.js";
import type { Cosignature } from "./cosignature.js";
import type { TreeHeadJson } from "./tree-head.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS logs (
  url       TEXT PRIMARY KEY,
  log       TEXT    NOT NULL,
  pinned_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS heads (
  log         TEXT    NOT NULL,
  size        INTEGER NOT NULL CHECK (size >= 1),
  root        BLOB    NOT NULL CHECK (length(root) = 32),
  timestamp   INTEGER NOT NULL,
  signature   BLOB    NOT NULL CHECK (length(signature) = 64),
  witness     TEXT    NOT NULL,
  witness_key BLOB    NOT NULL CHECK (length(witness_key) = 32),
  cosigned_at INTEGER NOT NULL,
  cosignature BLOB    NOT NULL CHECK (length(cosignature) = 64),
  PRIMARY KEY (log, size)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evidence (
  id          INTEGER PRIMARY KEY,
  log         TEXT    NOT NULL,
  kind        TEXT    NOT NULL CHECK (kind IN ('fork', 'rollback', 'inconsistent')),
  detail      TEXT    NOT NULL,
  seen        TEXT    NOT NULL,
  conflicting TEXT    NOT NULL,
  proof       TEXT,
  recorded_at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS evidence_log ON evidence (log, id);
`;

export type EvidenceKind = "fork" | "rollback" | "inconsistent";

export interface Evidence {
  id: number;
  log: string;
  kind: EvidenceKind;
  detail: string;
  /** The head the witness had, as the node served it then. */
  seen: TreeHeadJson;
  /** The head that contradicts it, as the node served it now. */
  conflicting: TreeHeadJson;
  /** The consistency proof the node gave (hex), for `inconsistent`. */
  proof: string[] | null;
  recordedAt: number;
}

export interface CosignedHead {
  head: TreeHeadRecord;
  cosignature: Cosignature;
}

interface HeadRow {
  log: string;
  size: number;
  root: Uint8Array;
  timestamp: number;
  signature: Uint8Array;
  witness: string;
  witness_key: Uint8Array;
  cosigned_at: number;
  cosignature: Uint8Array;
}

interface EvidenceRow {
  id: number;
  log: string;
  kind: EvidenceKind;
  detail: string;
  seen: string;
  conflicting: string;
  proof: string | null;
  recorded_at: number;
}

function fromRow(r: HeadRow): CosignedHead {
  const root = new Uint8Array(r.root);
  const head = { size: r.size, root, timestamp: r.timestamp, signature: new Uint8Array(r.signature) };
  const cosignature: Cosignature = {
    witness: r.witness,
    witnessKey: new Uint8Array(r.witness_key),
    log: b64u.decode(r.log, "log"),
    size: r.size,
    root,
    timestamp: r.timestamp,
    cosignedAt: r.cosigned_at,
    signature: new Uint8Array(r.cosignature),
  };
  return { head, cosignature };
}

const evidenceFromRow = (r: EvidenceRow): Evidence => ({
  id: r.id,
  log: r.log,
  kind: r.kind,
  detail: r.detail,
  seen: JSON.parse(r.seen) as TreeHeadJson,
  conflicting: JSON.parse(r.conflicting) as TreeHeadJson,
  proof: r.proof === null ? null : (JSON.parse(r.proof) as string[]),
  recordedAt: r.recorded_at,
});

export class WitnessStore {
  readonly #db: Database.Database;

  private constructor(db: Database.Database) {
    this.#db = db;
  }

  /** Opens (creating) `witness.db` in `dataDir`, which is made owner-only. */
  static open(dataDir: string): WitnessStore {
    // Owner-only, whether the directory is new or was made by someone else (as the node's).
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    chmodSync(dataDir, 0o700);
    const db = new Database(join(dataDir, "witness.db"));
    const mode = db.pragma("journal_mode = WAL", { simple: true });
    if (mode !== "wal") throw new Error(`SQLite refused WAL mode (journal_mode is ${String(mode)})`);
    // FULL: a countersignature we served must still be on record after a power cut.
    db.pragma("synchronous = FULL");
    db.exec(SCHEMA);
    return new WitnessStore(db);
  }

  /** The log key (b64u) the URL was pinned to, or null before first sight. */
  pinnedLog(url: string): string | null {
    const row = this.#db.prepare("SELECT log FROM logs WHERE url = ?").get(url) as
      | { log: string }
      | undefined;
    return row?.log ?? null;
  }

  pin(url: string, log: string, at: number): void {
    this.#db.prepare("INSERT INTO logs (url, log, pinned_at) VALUES (?, ?, ?)").run(url, log, at);
  }

  pins(): { url: string; log: string }[] {
    return this.#db.prepare("SELECT url, log FROM logs ORDER BY url").all() as { url: string; log: string }[];
  }

  /** The head of `size`, or the largest one. */
  head(log: string, size?: number): CosignedHead | null {
    const row = (
      size === undefined
        ? this.#db.prepare("SELECT * FROM heads WHERE log = ? ORDER BY size DESC LIMIT 1").get(log)
        : this.#db.prepare("SELECT * FROM heads WHERE log = ? AND size = ?").get(log, size)
    ) as HeadRow | undefined;
    return row === undefined ? null : fromRow(row);
  }

  heads(log: string, fromSize: number, limit: number): CosignedHead[] {
    const rows = this.#db
      .prepare("SELECT * FROM heads WHERE log = ? AND size >= ? ORDER BY size LIMIT ?")
      .all(log, fromSize, limit) as HeadRow[];
    return rows.map(fromRow);
  }

  /** Records a head and its countersignature; a second head for one size is refused by the key. */
  putHead({ head, cosignature: c }: CosignedHead): void {
    this.#db
      .prepare(
        `INSERT INTO heads (log, size, root, timestamp, signature, witness, witness_key, cosigned_at, cosignature)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        b64u.encode(c.log),
        head.size,
        head.root,
        head.timestamp,
        head.signature,
        c.witness,
        c.witnessKey,
        c.cosignedAt,
        c.signature,
      );
  }

  addEvidence(e: Omit<Evidence, "id">): number {
    const info = this.#db
      .prepare(
        `INSERT INTO evidence (log, kind, detail, seen, conflicting, proof, recorded_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        e.log,
        e.kind,
        e.detail,
        JSON.stringify(e.seen),
        JSON.stringify(e.conflicting),
        e.proof === null ? null : JSON.stringify(e.proof),
        e.recordedAt,
      );
    return Number(info.lastInsertRowid);
  }

  /** Evidence in the order it was found, for one log or all. */
  evidence(log?: string): Evidence[] {
    const rows = (
      log === undefined
        ? this.#db.prepare("SELECT * FROM evidence ORDER BY id").all()
        : this.#db.prepare("SELECT * FROM evidence WHERE log = ? ORDER BY id").all(log)
    ) as EvidenceRow[];
    return rows.map(evidenceFromRow);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
