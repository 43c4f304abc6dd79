/**
 * The writer thread: the only connection that writes, so the only owner of
 * the audit chain head. It runs on a worker thread because a durable commit
 * (`synchronous = FULL`) waits for fsync, and the service's event loop must
 * keep serving reads meanwhile. Each message is a batch of units from many
 * callers, committed in ONE transaction — one fsync for all of them (group
 * commit) — with a savepoint per unit, so a unit refused on a constraint is
 * rolled back alone and its neighbours still commit. The head is advanced
 * per unit and adopted as `committed` only after COMMIT returns; when the
 * batch fails the head is re-read from the database, which is by definition
 * the last committed state, so a failed commit can never leave a gap or a
 * fork in the chain. Every error is caught and answered: this thread must not
 * die with callers waiting.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import type { ChainHead } from "../audit/chain.js";
import { classifyUnitError, WriteApplier } from "./sqlite-apply.js";
import type { FromWriter, ToWriter, UnitResult, WriterOptions, WriteUnit } from "./sqlite-protocol.js";
import { configureWriter, migrate } from "./sqlite-schema.js";

const port = parentPort;
if (port === null) throw new Error("sqlite-writer must run as a worker thread");
const options = workerData as WriterOptions;

function reply(msg: FromWriter): void {
  port?.postMessage(msg);
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

class Writer {
  /** Null when the committed head is unknown and must be re-read before the next batch. */
  private committed: ChainHead | null;
  private readonly applier: WriteApplier;

  constructor(private readonly db: Database.Database) {
    this.applier = new WriteApplier(db);
    this.committed = this.applier.loadHead();
  }

  get headSeq(): number {
    return this.committed?.seq ?? 0;
  }

  run(units: readonly WriteUnit[]): UnitResult[] {
    const db = this.db;
    let head: ChainHead;
    try {
      db.exec("BEGIN IMMEDIATE");
      // Read the head under the write lock, every batch: one indexed lookup,
      // and a writer that is not alone on the file (another process, a
      // restored copy) continues the chain instead of failing on seq forever.
      head = this.applier.loadHead();
    } catch (err) {
      return this.failAll(units, err);
    }
    const results: UnitResult[] = [];
    try {
      for (const unit of units) {
        db.exec("SAVEPOINT unit");
        try {
          head = this.applier.apply(unit, head);
          db.exec("RELEASE unit");
          results.push({ ok: true });
        } catch (err) {
          const kind = classifyUnitError(err);
          if (kind === null) throw err;
          // `head` was not reassigned, so the unit's events are forgotten along
          // with its rows.
          db.exec("ROLLBACK TO unit");
          db.exec("RELEASE unit");
          results.push({ ok: false, kind, message: describe(err) });
        }
      }
      db.exec("COMMIT");
      this.committed = head;
      if (units.some((u, i) => u.write.op === "destroyKey" && results[i]?.ok)) this.scrubWal();
      return results;
    } catch (err) {
      return this.failAll(units, err);
    }
  }

  /**
   * Old page images of destroyed material survive in the WAL file until it is
   * overwritten; a TRUNCATE checkpoint copies the scrubbed pages into the
   * database and empties the WAL. Best effort: a busy reader only delays it
   * to the next automatic checkpoint, and the destroy itself is committed.
   */
  private scrubWal(): void {
    try {
      this.db.pragma("wal_checkpoint(TRUNCATE)");
    } catch {
      // Not a reason to fail writes that are already durable.
    }
  }

  private failAll(units: readonly WriteUnit[], err: unknown): UnitResult[] {
    try {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
    } catch {
      // SQLite may already have rolled back (it does on some I/O errors).
    }
    try {
      this.committed = this.applier.loadHead();
    } catch {
      this.committed = null;
    }
    const message = `write not committed: ${describe(err)}`;
    return units.map(() => ({ ok: false, kind: "unavailable", message }));
  }

  close(): void {
    this.db.close();
  }
}

function open(): Writer {
  const db = new Database(options.path);
  try {
    configureWriter(db, options);
    migrate(db);
    return new Writer(db);
  } catch (err) {
    db.close();
    throw err;
  }
}

let writer: Writer;
try {
  writer = open();
  port.on("message", (msg: ToWriter) => {
    if (msg.type === "batch") {
      let results: UnitResult[];
      try {
        results = writer.run(msg.units);
      } catch (err) {
        results = msg.units.map(() => ({ ok: false, kind: "unavailable", message: describe(err) }));
      }
      reply({ type: "batch", id: msg.id, results });
    } else {
      try {
        writer.close();
      } finally {
        reply({ type: "closed" });
        port.close();
      }
    }
  });
  reply({ type: "ready", headSeq: writer.headSeq });
} catch (err) {
  reply({ type: "fatal", message: describe(err) });
  port.close();
}
