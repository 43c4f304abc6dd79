/**
 * The SQLite store's Merkle subtrees (src/store/sqlite-subtrees.ts, schema
 * version 8): after appends in batches of every size, with a refused unit
 * rolled back in the middle, `audit_subtrees` holds exactly the complete
 * aligned subtrees with the hashes the leaves give; and a file written at
 * version 6 (events, no subtree table) is backfilled when it is opened, to
 * the very same rows.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { treeHead } from "../../src/audit/merkle.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite.js";
import { SCHEMA_VERSION } from "../../src/store/sqlite-schema.js";
import { ev, key, version } from "./contract.js";

type Row = { level: number; idx: number; hash: string };

function subtreeRows(file: string): Row[] {
  const db = new Database(file, { readonly: true });
  try {
    return (
      db.prepare("SELECT level, idx, hash FROM audit_subtrees ORDER BY level, idx").all() as {
        level: number;
        idx: number;
        hash: Uint8Array;
      }[]
    ).map((r) => ({ level: r.level, idx: r.idx, hash: Buffer.from(r.hash).toString("hex") }));
  } finally {
    db.close();
  }
}

/** Every complete aligned subtree of `leaves` above level 0, as the table should hold it. */
function expectedRows(leaves: Uint8Array[]): Row[] {
  const rows: Row[] = [];
  for (let level = 1; 2 ** level <= leaves.length; level++) {
    const width = 2 ** level;
    for (let idx = 0; (idx + 1) * width <= leaves.length; idx++) {
      const hash = treeHead(leaves.slice(idx * width, (idx + 1) * width));
      rows.push({ level, idx, hash: Buffer.from(hash).toString("hex") });
    }
  }
  return rows;
}

describe("SQLite Merkle subtrees", () => {
  let dir: string;
  let file: string;
  let store: SqliteStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "custos-subtrees-"));
    file = join(dir, "custos.db");
    store = await openSqliteStore(file);
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("holds exactly the complete subtrees after batched appends, a refused unit rolled back among them", async () => {
    await store.createKey(key("k"), version("k", 1), ev());
    let n = 1;
    for (const batch of [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]) {
      await store.appendAudit(Array.from({ length: batch }, () => ev()));
      n += batch;
      if (batch === 13) {
        // A duplicate key is refused alone: its event, and any subtree it would complete, are rolled back.
        await expect(store.createKey(key("k"), version("k", 1), ev())).rejects.toThrow();
      }
    }
    expect(await store.auditSize()).toBe(n);
    expect(subtreeRows(file)).toEqual(expectedRows(await store.readLeafHashes(1, n)));
  });

  it("backfills a version-6 file's subtrees when it is opened", async () => {
    await store.appendAudit(Array.from({ length: 300 }, () => ev()));
    await store.close();
    const written = subtreeRows(file);
    expect(written.length).toBe(300 - 4); // n minus the number of 1 bits of 300 (100101100₂)
    const db = new Database(file);
    db.exec("DROP TABLE audit_subtrees");
    db.pragma("user_version = 6");
    db.close();
    store = await openSqliteStore(file);
    expect(subtreeRows(file)).toEqual(written);
    const check = new Database(file, { readonly: true });
    expect(check.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
    // And appends carry on from the backfilled table.
    await store.appendAudit(Array.from({ length: 20 }, () => ev()));
    expect(subtreeRows(file)).toEqual(expectedRows(await store.readLeafHashes(1, 320)));
  });
});
