/**
 * The Merkle log's stored subtrees in SQLite (schema version 8,
 * docs/FORMATS.md §9): the hash of every complete, aligned, power-of-two
 * subtree of the audit log — (level, idx) covers leaves
 * [idx·2^level, (idx+1)·2^level); level 0 is the `leaf` column of
 * `audit_events` and is not repeated here. They let the node serve RFC 9162
 * proofs and roots in O(log n) reads (src/audit/merkle-subtrees.ts) instead
 * of loading every leaf hash per request.
 *
 * The writer adds them in the transaction that appends the events: an event
 * whose seq is divisible by 2^L completes one subtree at each level 1..L, so
 * an append costs one read and one insert per completed level, two of each on
 * average. A file made before version 8 is backfilled by the migration, in
 * pages of leaves so its memory stays bounded however long the log is.
 */
import type Database from "better-sqlite3";
import { nodeHash } from "../audit/merkle.js";

export const SUBTREES_SCHEMA = `
CREATE TABLE audit_subtrees (
  level INTEGER NOT NULL CHECK (level BETWEEN 1 AND 62),
  idx   INTEGER NOT NULL CHECK (idx >= 0),
  hash  BLOB    NOT NULL CHECK (length(hash) = 32),
  PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;
`;

/** Reading one stored subtree (reader connection); level 0 is an event's leaf hash. */
export const SUBTREE_SQL = {
  leaf: "SELECT leaf AS hash FROM audit_events WHERE seq = ?",
  node: "SELECT hash FROM audit_subtrees WHERE level = ? AND idx = ?",
} as const;

const BACKFILL_PAGE = 8192;

/** The writer's side: stores the subtrees each appended leaf completes. */
export class SubtreeWrites {
  private readonly leaf: Database.Statement<[number], { hash: Uint8Array }>;
  private readonly node: Database.Statement<[number, number], { hash: Uint8Array }>;
  private readonly insert: Database.Statement<[number, number, Uint8Array]>;

  constructor(db: Database.Database) {
    this.leaf = db.prepare(SUBTREE_SQL.leaf);
    this.node = db.prepare(SUBTREE_SQL.node);
    // REPLACE: a log truncated behind the node's back leaves rows for subtrees past its end; the appends
    // that complete them again overwrite them (and the signer refuses to sign over a truncated log).
    this.insert = db.prepare("INSERT OR REPLACE INTO audit_subtrees (level, idx, hash) VALUES (?, ?, ?)");
  }

  /** After the event `seq` (the seq-th leaf) is stored with `leaf`: stores every subtree it completes. */
  leafAdded(seq: number, leaf: Uint8Array): void {
    let hash = leaf;
    let level = 0;
    // At `level`, the subtree just finished is index seq/2^level − 1; it is a right child when that quotient is even.
    for (let q = seq; q % 2 === 0; q /= 2) {
      const sibling = q - 2;
      const left = level === 0 ? this.leaf.get(sibling + 1) : this.node.get(level, sibling);
      if (left === undefined) {
        throw new Error(`the audit log has no subtree ${level}/${sibling}: audit_subtrees is incomplete`);
      }
      hash = nodeHash(new Uint8Array(left.hash), hash);
      level++;
      this.insert.run(level, q / 2 - 1, hash);
    }
  }
}

/**
 * Fills `audit_subtrees` from the stored leaves of a log written before the
 * table existed. Runs inside the migration's transaction; holds at most one
 * page of leaves and one hash per level.
 */
export function backfillSubtrees(db: Database.Database): void {
  const page = db.prepare("SELECT seq, leaf FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?");
  const insert = db.prepare("INSERT INTO audit_subtrees (level, idx, hash) VALUES (?, ?, ?)");
  const stack: Uint8Array[] = [];
  let seq = 0;
  for (;;) {
    const rows = page.all(seq, BACKFILL_PAGE) as { seq: number; leaf: Uint8Array }[];
    if (rows.length === 0) return;
    for (const row of rows) {
      if (row.seq !== seq + 1) throw new Error(`audit_events jumps from seq ${seq} to ${row.seq}`);
      seq = row.seq;
      let hash: Uint8Array = new Uint8Array(row.leaf);
      let level = 0;
      for (let q = seq; q % 2 === 0; q /= 2) {
        hash = nodeHash(stack.pop() as Uint8Array, hash);
        level++;
        insert.run(level, q / 2 - 1, hash);
      }
      stack.push(hash);
    }
  }
}
