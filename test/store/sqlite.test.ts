// The SQLite store: the shared Store contract on a temporary file, then what
// only this implementation promises — group commit, the writer thread off the
// event loop, recovery from a refused commit and from a dead writer, the
// chain continuing across reopen, indexed audit queries, scrubbed destroys.
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { auditQuery, openSqliteStore, type SqliteStore } from "../../src/store/sqlite.js";
import { SCHEMA_VERSION } from "../../src/store/sqlite-schema.js";
import { type KeyRecord, StoreUnavailableError } from "../../src/store/store.js";
import {
  approval,
  ev,
  expectChain,
  key,
  readAll,
  review,
  storeContract,
  token,
  version,
} from "./contract.js";

const dirs: string[] = [];
async function freshFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "custos-store-"));
  dirs.push(dir);
  return join(dir, "custos.db");
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** Set CUSTOS_STORE_STATS=1 to print the group-commit figures. */
function report(label: string, batches: number, units: number): void {
  if (process.env.CUSTOS_STORE_STATS) {
    console.info(
      `${label}: ${units} units in ${batches} batches, ${(units / batches).toFixed(1)} units/batch`,
    );
  }
}

storeContract("sqlite", async () => openSqliteStore(await freshFile()));

describe("SqliteStore", () => {
  let file: string;
  let store: SqliteStore;
  beforeEach(async () => {
    file = await freshFile();
    store = await openSqliteStore(file);
  });
  afterEach(async () => {
    await store.close();
  });

  it("keeps the file in WAL mode with the current schema version", () => {
    const db = new Database(file, { readonly: true });
    try {
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    } finally {
      db.close();
    }
  });

  it("group-commits 2,000 concurrent appends in a handful of transactions", async () => {
    const before = store.stats();
    await Promise.all(Array.from({ length: 2000 }, () => store.appendAudit([ev()])));
    const after = store.stats();
    const batches = after.batches - before.batches;
    expect(after.units - before.units).toBe(2000);
    expect(batches).toBeLessThanOrEqual(10);
    report("burst of 2,000", batches, 2000);
    expect((await expectChain(store)).length).toBe(2000);
  });

  it("group-commits callers that each wait for their own commit", async () => {
    const clients = 64;
    const each = 30;
    const before = store.stats();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (let i = 0; i < each; i++) await store.appendAudit([ev()]);
      }),
    );
    const batches = store.stats().batches - before.batches;
    // Sequential commits would be clients × each transactions.
    expect(batches).toBeLessThan((clients * each) / 8);
    report(`${clients} clients x ${each} sequential`, batches, clients * each);
    await expectChain(store);
  });

  it("runs a refused unit and its neighbours in one transaction", async () => {
    await store.createKey(key("dup"), version("dup", 1), ev());
    const before = store.stats();
    const dupEvent = ev();
    const results = await Promise.allSettled([
      store.appendAudit([ev()]),
      store.createKey(key("dup"), version("dup", 1), dupEvent),
      store.appendAudit([ev(), ev()]),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(store.stats()).toMatchObject({ batches: before.batches + 1, units: before.units + 3 });
    const all = await expectChain(store);
    expect(all).toHaveLength(4);
    expect(all.map((e) => e.event.requestId)).not.toContain(dupEvent.requestId);
  });

  it("refuses a write that cannot cross to the writer thread without failing its neighbours", async () => {
    const odd = { ...key("odd"), describe: () => "not cloneable" } as KeyRecord;
    const results = await Promise.allSettled([
      store.appendAudit([ev()]),
      store.createKey(odd, version("odd", 1), ev()),
      store.appendAudit([ev()]),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(results[1]).toMatchObject({ reason: expect.any(TypeError) });
    expect(await store.getKey("odd")).toBeNull();
    expect((await expectChain(store)).length).toBe(2);
  });

  it("continues the chain after the file is reopened", async () => {
    await store.createKey(key("k"), version("k", 1), ev());
    await Promise.all(Array.from({ length: 10 }, () => store.appendAudit([ev()])));
    await store.close();
    store = await openSqliteStore(file);
    await store.addKeyVersion(version("k", 2), "2025-03-02T00:00:00.000Z", ev());
    await Promise.all(Array.from({ length: 10 }, () => store.appendAudit([ev()])));
    expect((await expectChain(store)).length).toBe(22);
    expect(await store.getKey("k")).toMatchObject({ latestVersion: 2 });
  });

  it("continues one chain when two stores write the same file in turn", async () => {
    const other = await openSqliteStore(file);
    try {
      await store.appendAudit([ev({ reason: "a1" })]);
      await other.appendAudit([ev({ reason: "b1" })]);
      await store.appendAudit([ev({ reason: "a2" })]);
      await other.appendAudit([ev({ reason: "b2" })]);
      const events = await expectChain(store);
      expect(events.map((e) => e.event.reason)).toEqual(["a1", "b1", "a2", "b2"]);
    } finally {
      await other.close();
    }
  });

  it("refuses writes promptly while the database is locked, then recovers with an intact chain", async () => {
    await store.close();
    store = await openSqliteStore(file, { busyTimeoutMs: 50 });
    await store.appendAudit([ev(), ev()]);
    const locker = new Database(file);
    locker.exec("BEGIN EXCLUSIVE");
    let refused: PromiseSettledResult<void>[];
    try {
      const writes = [
        ...Array.from({ length: 20 }, () => store.appendAudit([ev()])),
        store.createKey(key("locked"), version("locked", 1), ev()),
      ];
      refused = await Promise.allSettled(writes);
      // Reads do not depend on the writer.
      expect(await readAll(store)).toHaveLength(2);
    } finally {
      locker.exec("ROLLBACK");
      locker.close();
    }
    for (const r of refused) {
      expect(r).toMatchObject({ status: "rejected", reason: expect.any(StoreUnavailableError) });
    }
    expect((refused[0] as PromiseRejectedResult).reason.message).toMatch(/SQLITE_BUSY/);
    expect(store.stats().failedBatches).toBeGreaterThanOrEqual(1);

    const later = ev();
    await store.appendAudit([later]);
    await store.createKey(key("locked"), version("locked", 1), ev());
    const all = await expectChain(store);
    expect(all).toHaveLength(4);
    expect(all[2]?.event.requestId).toBe(later.requestId);
  });

  it("fails a whole batch that fills the disk, reverts the chain head, and writes again when there is room", async () => {
    await store.appendAudit([ev(), ev()]);
    await store.close();
    const db = new Database(file, { readonly: true });
    const pages = db.pragma("page_count", { simple: true }) as number;
    db.close();
    store = await openSqliteStore(file, { maxPages: pages + 8 });
    // A small unit and many large ones in one batch: the large ones fill the
    // cap part-way through the transaction, after earlier units were chained.
    const results = await Promise.allSettled([
      store.appendAudit([ev()]),
      ...Array.from({ length: 100 }, () => store.appendAudit([ev({ reason: "x".repeat(3000) })])),
    ]);
    for (const r of results) {
      expect(r).toMatchObject({ status: "rejected", reason: expect.any(StoreUnavailableError) });
    }
    expect((results[0] as PromiseRejectedResult).reason.message).toMatch(/SQLITE_FULL/);
    expect(store.stats()).toMatchObject({ batches: 1, failedBatches: 1 });

    const small = ev();
    await store.appendAudit([small]);
    const all = await expectChain(store);
    expect(all).toHaveLength(3);
    expect(all[2]?.event.requestId).toBe(small.requestId);
  });

  it("refuses writes quickly while the writer cannot start, and recovers when it can", async () => {
    const first = ev();
    await store.appendAudit([first]);
    const db = new Database(file);
    try {
      db.pragma("user_version = 99"); // the restarted writer will refuse the file
      await store.killWriterForTesting();
      await expect(store.appendAudit([ev()])).rejects.toThrow(/schema version 99/);
      await expect(store.appendAudit([ev()])).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(await readAll(store)).toHaveLength(1);
    } finally {
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
      db.close();
    }
    // After the back-off, the next write starts a writer again.
    const last = ev();
    await vi.waitFor(() => store.appendAudit([last]), { timeout: 10_000, interval: 50 });
    const all = await expectChain(store);
    expect(all.map((e) => e.event.requestId)).toEqual([first.requestId, last.requestId]);
    expect(store.stats().restarts).toBe(1);
  });

  it("keeps the event loop turning while a commit is held up", async () => {
    // The writer's transaction cannot start until a timer on the main thread
    // releases the lock; were the write blocking the event loop, the timer
    // could never fire and the write would fail with SQLITE_BUSY.
    await store.close();
    store = await openSqliteStore(file, { busyTimeoutMs: 30_000 });
    const locker = new Database(file);
    locker.exec("BEGIN EXCLUSIVE");
    let ticks = 0;
    const timer = setInterval(() => {
      ticks++;
      if (ticks === 20) {
        locker.exec("ROLLBACK");
        locker.close();
      }
    }, 1);
    try {
      await Promise.all(Array.from({ length: 500 }, () => store.appendAudit([ev()])));
    } finally {
      clearInterval(timer);
      if (locker.open) locker.close();
    }
    expect(ticks).toBeGreaterThanOrEqual(20);
    expect((await expectChain(store)).length).toBe(500);
  });

  it("keeps the event loop turning during a large burst", async () => {
    let turns = 0;
    let ticks = 0;
    let spinning = true;
    const spin = (): void => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    const timer = setInterval(() => ticks++, 1);
    const before = store.stats();
    try {
      for (let wave = 0; wave < 20; wave++) {
        await Promise.all(Array.from({ length: 250 }, () => store.appendAudit([ev(), ev()])));
      }
    } finally {
      spinning = false;
      clearInterval(timer);
    }
    const batches = store.stats().batches - before.batches;
    // Each batch's fsync happens on the writer thread while this one keeps
    // turning: many loop turns per transaction, and timers keep firing.
    expect(turns).toBeGreaterThan(batches * 2);
    expect(ticks).toBeGreaterThan(0);
    report(`20 waves of 250 (turns ${turns}, ticks ${ticks})`, batches, 5000);
    expect((await expectChain(store)).length).toBe(10_000);
  });

  it("survives the writer thread dying mid-burst", async () => {
    await store.appendAudit([ev()]);
    const events = Array.from({ length: 500 }, () => ev());
    const writes = events.map((e) => store.appendAudit([e]));
    await new Promise((r) => setImmediate(r)); // the first batch is now with the writer
    await store.killWriterForTesting();
    const results = await Promise.allSettled(writes);
    for (const r of results) {
      if (r.status === "rejected") expect(r.reason).toBeInstanceOf(StoreUnavailableError);
    }
    await store.appendAudit([ev()]);
    expect(store.stats().restarts).toBe(1);
    const chained = new Set((await expectChain(store)).map((e) => e.event.requestId));
    events.forEach((e, i) => {
      if (results[i]?.status === "fulfilled") expect(chained.has(e.requestId)).toBe(true);
    });
  });

  it("refuses a file written by a newer schema, and a path it cannot create", async () => {
    const newer = await freshFile();
    const db = new Database(newer);
    db.pragma("user_version = 99");
    db.close();
    await expect(openSqliteStore(newer)).rejects.toThrow(/schema version 99/);
    await expect(openSqliteStore(join(newer, "no", "such", "dir.db"))).rejects.toBeInstanceOf(
      StoreUnavailableError,
    );
  });

  it("migrates a version-1 file (before witness countersignatures) to the current version, keeping its events", async () => {
    await store.appendAudit([ev(), ev()]);
    await store.close();
    const db = new Database(file);
    db.exec(
      "DROP TABLE audit_cosignatures; DROP TABLE reviews; DROP TABLE approval_votes; DROP TABLE approvals; DROP TABLE audit_subtrees",
    );
    db.pragma("user_version = 1");
    db.close();
    store = await openSqliteStore(file);
    expect(await store.auditSize()).toBe(2);
    expect(await store.getCosignatures()).toEqual([]);
    const check = new Database(file, { readonly: true });
    expect(check.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });

  it("migrates a version-6 file (tokens without last use or mint grant, no stored subtrees) to the current version, keeping its tokens", async () => {
    await store.putToken(token("h-old", "alice"), ev());
    await store.close();
    const db = new Database(file);
    db.exec(
      "DROP INDEX tokens_created; ALTER TABLE tokens DROP COLUMN last_used_at; ALTER TABLE tokens DROP COLUMN minted_under; DROP TABLE audit_subtrees",
    );
    db.pragma("user_version = 6");
    db.close();
    store = await openSqliteStore(file);
    expect(await store.getToken("h-old")).toEqual(token("h-old", "alice"));
    await store.touchToken("h-old", "2025-03-03T10:00:00.000Z");
    expect((await store.getToken("h-old"))?.lastUsedAt).toBe("2025-03-03T10:00:00.000Z");
    const check = new Database(file, { readonly: true });
    expect(check.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });

  it("migrates a version-3 file (before break-glass reviews) to version 4, keeping its events", async () => {
    await store.appendAudit([ev(), ev(), ev()]);
    await store.close();
    const db = new Database(file);
    db.exec("DROP TABLE reviews; DROP TABLE approval_votes; DROP TABLE approvals; DROP TABLE audit_subtrees");
    db.pragma("user_version = 3");
    db.close();
    store = await openSqliteStore(file);
    expect(await store.auditSize()).toBe(3);
    expect(await store.listReviews()).toEqual([]);
    await store.putReview(review("r-1"), ev());
    expect((await store.listReviews({ open: true })).map((r) => r.id)).toEqual(["r-1"]);
    const check = new Database(file, { readonly: true });
    expect(check.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });

  it("migrates a version-4 file (keys CHECK without 'threshold') to version 5, keeping its keys", async () => {
    await store.createKey(key("old"), version("old", 1), ev());
    await store.close();
    const db = new Database(file);
    const sql = (db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'keys'").get() as { sql: string })
      .sql;
    expect(sql).toContain("'threshold'");
    db.pragma("foreign_keys = OFF");
    db.exec(sql.replace("CREATE TABLE keys (", "CREATE TABLE keys_v4 (").replace(", 'threshold'", ""));
    db.exec("INSERT INTO keys_v4 SELECT * FROM keys; DROP TABLE keys; ALTER TABLE keys_v4 RENAME TO keys;");
    db.exec("DROP TRIGGER approval_votes_not_requester; DROP TABLE approval_votes; DROP TABLE approvals");
    db.exec("DROP TABLE audit_subtrees");
    db.pragma("user_version = 4");
    expect(() => db.prepare("UPDATE keys SET protection = 'threshold' WHERE name = 'old'").run()).toThrow(
      /CHECK/,
    );
    db.close();
    store = await openSqliteStore(file);
    expect((await store.getKey("old"))?.protection).toBe("software");
    await store.createKey({ ...key("thr"), protection: "threshold" }, version("thr", 1), ev());
    expect((await store.getKey("thr"))?.protection).toBe("threshold");
    await store.replaceKeyMaterial("thr", 1, new Uint8Array([9, 9]), new Date().toISOString(), ev());
    expect([...(await store.getKeyVersions("thr"))[0]!.sealedMaterial]).toEqual([9, 9]);
    await expect(
      store.replaceKeyMaterial("thr", 2, new Uint8Array([1]), new Date().toISOString(), ev()),
    ).rejects.toThrow();
    const check = new Database(file, { readonly: true });
    expect(check.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });

  it("migrates a version-5 file (before approval requests) to version 6, keeping its reviews", async () => {
    await store.putReview(review("r-5"), ev());
    await store.close();
    const db = new Database(file);
    db.exec("DROP TRIGGER approval_votes_not_requester; DROP TABLE approval_votes; DROP TABLE approvals");
    db.exec("DROP TABLE audit_subtrees");
    db.pragma("user_version = 5");
    db.close();
    store = await openSqliteStore(file);
    expect((await store.listReviews()).map((r) => r.id)).toEqual(["r-5"]);
    expect(await store.listApprovals()).toEqual([]);
    await store.putApproval(approval("a-6"), ev());
    expect((await store.getApproval("a-6"))?.state).toBe("pending");
    const check = new Database(file, { readonly: true });
    expect(check.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    // The trigger is there too: the requester's approval is refused by the database itself.
    check.close();
    const raw = new Database(file);
    expect(() =>
      raw
        .prepare(
          "INSERT INTO approval_votes (approval_id, principal, organisation, roles, via, at) VALUES ('a-6', 'kim', 'weill', '[]', 'token', 'x')",
        )
        .run(),
    ).toThrow(/cannot approve their own request/);
    raw.close();
  });

  it("filters audit events through indexes", async () => {
    await store.appendAudit([
      ev({ principal: "alice", key: "k1", operation: "encrypt", time: "2025-03-01T10:00:00.000Z" }),
      ev({
        principal: "bob",
        key: "k2",
        operation: "decrypt",
        decision: "deny",
        time: "2025-03-01T11:00:00.000Z",
      }),
      ev({ principal: "alice", key: "k2", operation: "decrypt", time: "2025-03-01T12:00:00.000Z" }),
    ]);
    const seqs = async (f: Parameters<SqliteStore["searchAudit"]>[0]): Promise<number[]> =>
      (await store.searchAudit(f)).map((e) => e.event.seq);
    expect(await seqs({ principal: "alice" })).toEqual([1, 3]);
    expect(await seqs({ key: "k2" })).toEqual([2, 3]);
    expect(await seqs({ operation: "decrypt", decision: "allow" })).toEqual([3]);
    expect(await seqs({ since: "2025-03-01T11:00:00.000Z", until: "2025-03-01T12:00:00.000Z" })).toEqual([2]);
    expect(await seqs({ principal: "alice", fromSeq: 2 })).toEqual([3]);
    expect(await seqs({ since: "2025-03-01T11:00:00.000Z" })).toEqual([2, 3]);
    expect(await seqs({ until: "2025-03-01T11:00:00.000Z" })).toEqual([1]);
    await expect(store.searchAudit({ principal: 7 as unknown as string })).rejects.toThrow(TypeError);
    await expect(store.searchAudit({ limit: -1 })).rejects.toThrow(RangeError);

    const db = new Database(file, { readonly: true });
    try {
      const plan = (filter: Parameters<typeof auditQuery>[0]): string => {
        const { sql, params } = auditQuery(filter);
        const rows = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[];
        return rows.map((r) => r.detail).join("; ");
      };
      expect(plan({ principal: "alice" })).toMatch(/USING INDEX audit_events_principal/);
      expect(plan({ key: "k1" })).toMatch(/USING INDEX audit_events_key/);
      expect(plan({ operation: "encrypt" })).toMatch(/USING INDEX audit_events_operation/);
      expect(plan({ decision: "deny" })).toMatch(/USING INDEX audit_events_decision/);
      expect(plan({ since: "2025-03-01T11:00:00.000Z" })).toMatch(/USING INDEX audit_events_time/);
      expect(plan({ until: "2025-03-01T11:00:00.000Z", fromSeq: 2 })).toMatch(
        /USING INDEX audit_events_time/,
      );
      expect(plan({ fromSeq: 2 })).toMatch(/USING INTEGER PRIMARY KEY/);
    } finally {
      db.close();
    }
  });

  it("leaves no copy of destroyed key material in the database or WAL file", async () => {
    const material = randomBytes(48);
    await store.createKey(key("gone"), { ...version("gone", 1), sealedMaterial: material }, ev());
    const files = async (): Promise<Buffer> =>
      Buffer.concat([await readFile(file), await readFile(`${file}-wal`).catch(() => Buffer.alloc(0))]);
    expect((await files()).includes(material)).toBe(true);
    await store.destroyKey("gone", "2025-06-01T00:00:00.000Z", ev());
    expect((await files()).includes(material)).toBe(false);
  });

  it("closes idempotently", async () => {
    await store.close();
    await store.close();
    await expect(store.readAudit({})).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});
