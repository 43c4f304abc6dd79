/**
 * The embedded store: one SQLite file in WAL mode, written by a single writer
 * thread and read on the main thread. The split exists because a durable
 * commit waits for fsync, which must not stall the event loop, while reads are
 * short and in WAL mode never wait for the writer — a separate read-only
 * connection sees every committed transaction. Writes are queued and group
 * committed (see sqlite-client.ts and sqlite-writer.ts); each write carries its
 * audit event into the same transaction, and the writer alone numbers and
 * chains the events, so there is one chain head and one place that can
 * advance it.
 */
import { resolve as resolvePath } from "node:path";
import Database from "better-sqlite3";
import type { AuditEventInput, ChainedAuditEvent } from "../audit/event.js";
import {
  APPROVAL_SQL,
  type ApprovalRow,
  approvalFromRows,
  checkApproval,
  type VoteRow,
} from "./sqlite-approvals.js";
import { WriterClient, type WriterStats } from "./sqlite-client.js";
import { SEALED_RECORDS_SQL, type SealedRow } from "./sqlite-custody.js";
import type { WriteUnit } from "./sqlite-protocol.js";
import { LIST_REVIEWS_SQL, type ReviewRow, reviewFromRow } from "./sqlite-reviews.js";
import {
  type AuditRow,
  auditFromRow,
  bytes,
  type KeyRow,
  type KeyVersionRow,
  keyFromRow,
  keyVersionFromRow,
  type SealConfigRow,
  sealConfigFromRow,
} from "./sqlite-rows.js";
import { SUBTREE_SQL } from "./sqlite-subtrees.js";
import { LIST_TOKENS_SQL, type TokenRow, tokenFromRow } from "./sqlite-tokens.js";
import {
  type ApprovalDenial,
  type ApprovalRecord,
  type ApprovalState,
  type ApprovalUse,
  type ApprovalVote,
  type AuditFilter,
  type AuditQuery,
  type CosignatureRecord,
  type CustodySwitch,
  type KeyPatch,
  type KeyRecord,
  type KeyVersionRecord,
  type ReviewClose,
  type ReviewRecord,
  type SealConfig,
  type SealedRecord,
  type Store,
  StoreUnavailableError,
  type TokenRecord,
  type TreeHeadRecord,
} from "./store.js";
import { checkEvent, checkEvents, checkKeyVersion, checkNewKey, checkPatch } from "./validate.js";

export const AUDIT_PAGE_MAX = 1000;

interface HeadRow {
  size: number;
  root: Uint8Array;
  timestamp: number;
  signature: Uint8Array;
}

interface CosignatureRow {
  witness_key: Uint8Array;
  size: number;
  witness: string;
  root: Uint8Array;
  timestamp: number;
  cosigned_at: number;
  signature: Uint8Array;
}

const headFromRow = (row: HeadRow | undefined): TreeHeadRecord | null =>
  row === undefined
    ? null
    : {
        size: row.size,
        root: new Uint8Array(row.root),
        timestamp: row.timestamp,
        signature: new Uint8Array(row.signature),
      };

const cosignatureFromRow = (r: CosignatureRow): CosignatureRecord => ({
  witness: r.witness,
  witnessKey: new Uint8Array(r.witness_key),
  size: r.size,
  root: new Uint8Array(r.root),
  timestamp: r.timestamp,
  cosignedAt: r.cosigned_at,
  signature: new Uint8Array(r.signature),
});

export interface SqliteStoreOptions {
  /** How long the writer waits for a lock held by another process before failing the batch. Default 5000. */
  busyTimeoutMs?: number;
  /**
   * Caps the database at this many pages (SQLite `max_page_count`, 4 KiB
   * each); writes past it fail with StoreUnavailableError, as on a full disk.
   */
  maxPages?: number;
}

const FILTER_COLUMNS = [
  ["principal", "principal = ?"],
  ["key", "key_name = ?"],
  ["operation", "operation = ?"],
  ["decision", "decision = ?"],
  ["purpose", "purpose = ?"],
] as const;

const FILTER_FIELDS = ["principal", "key", "operation", "decision", "purpose", "since", "until"] as const;

/** Above every RFC 3339 string; stands in for an absent upper time bound. */
const TIME_MAX = "\uffff";

/** The SQL for an audit search; exported so tests can check its query plan. */
export function auditQuery(filter: AuditFilter): { sql: string; params: Array<string | number> } {
  const fromSeq = filter.fromSeq ?? 1;
  const limit = Math.min(filter.limit ?? AUDIT_PAGE_MAX, AUDIT_PAGE_MAX);
  if (!Number.isSafeInteger(fromSeq)) throw new RangeError(`fromSeq must be an integer, got ${fromSeq}`);
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new RangeError(`limit must be a non-negative integer, got ${filter.limit}`);
  }
  const { since, until } = filter;
  for (const field of FILTER_FIELDS) {
    const value = filter[field];
    if (value !== undefined && typeof value !== "string") throw new TypeError(`${field} must be a string`);
  }
  const timeBound = since !== undefined || until !== undefined;
  // With a time bound the planner must take the time index: `+seq` stops it
  // from preferring a rowid scan from fromSeq, and a one-sided bound is made
  // two-sided because SQLite guesses a one-sided range matches most rows and
  // would rather scan in seq order. Investigations ask for narrow windows deep
  // in a long log, where the index is what makes the query cheap.
  const where = [timeBound ? "+seq >= ?" : "seq >= ?"];
  const params: Array<string | number> = [fromSeq];
  if (timeBound) {
    where.push("time >= ? AND time < ?");
    params.push(since ?? "", until ?? TIME_MAX);
  }
  for (const [field, clause] of FILTER_COLUMNS) {
    const value = filter[field];
    if (value === undefined) continue;
    where.push(clause);
    params.push(value);
  }
  const hmacs = filter.contextHmacs;
  if (hmacs !== undefined) {
    if (
      !Array.isArray(hmacs) ||
      hmacs.length === 0 ||
      hmacs.length > 16 ||
      !hmacs.every((h) => typeof h === "string")
    ) {
      throw new TypeError("contextHmacs must be 1 to 16 strings");
    }
    where.push(`seq IN (SELECT seq FROM audit_subjects WHERE hmac IN (${hmacs.map(() => "?").join(", ")}))`);
    params.push(...hmacs);
  }
  params.push(limit);
  return {
    sql: `SELECT seq, event, hash FROM audit_events WHERE ${where.join(" AND ")} ORDER BY seq LIMIT ?`,
    params,
  };
}

export async function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
  const file = resolvePath(path);
  // The writer creates and migrates the file first; only then can a
  // read-only connection open it.
  const writer = await WriterClient.start({
    path: file,
    busyTimeoutMs: options.busyTimeoutMs ?? 5000,
    ...(options.maxPages !== undefined ? { maxPages: options.maxPages } : {}),
  });
  try {
    const reader = new Database(file, { readonly: true, fileMustExist: true });
    reader.pragma("busy_timeout = 1000");
    return new SqliteStore(writer, reader);
  } catch (err) {
    await writer.close();
    throw new StoreUnavailableError(`cannot open ${file} for reading: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

export class SqliteStore implements Store {
  private closed = false;
  private readonly statements = new Map<string, Database.Statement>();

  /** Use openSqliteStore. */
  constructor(
    private readonly writer: WriterClient,
    private readonly reader: Database.Database,
  ) {}

  /** Group-commit counters: how many transactions served how many writes. */
  stats(): WriterStats {
    return this.writer.stats();
  }

  async getSealConfig(): Promise<SealConfig | null> {
    const row = this.read<SealConfigRow>("SELECT * FROM seal_config WHERE id = 1");
    return row === undefined ? null : sealConfigFromRow(row);
  }

  async initialize(
    config: SealConfig,
    secrets: Record<string, Uint8Array>,
    rootToken: TokenRecord,
    event: AuditEventInput,
  ): Promise<void> {
    checkEvent(event);
    for (const [name, sealed] of Object.entries(secrets)) {
      if (!(sealed instanceof Uint8Array)) throw new TypeError(`secrets.${name} must be a Uint8Array`);
    }
    return this.write({ write: { op: "initialize", config, secrets, rootToken }, events: [event] });
  }

  async getSysSecret(name: string): Promise<Uint8Array | null> {
    const row = this.read<{ sealed: Uint8Array }>("SELECT sealed FROM sys_secrets WHERE name = ?", name);
    return row === undefined ? null : bytes(row.sealed);
  }

  async getSealedRecords(): Promise<SealedRecord[]> {
    return this.readAll<SealedRow>(SEALED_RECORDS_SQL).map((r) => ({ ...r, sealed: bytes(r.sealed) }));
  }

  async switchCustody(change: CustodySwitch, event: AuditEventInput): Promise<void> {
    checkEvent(event);
    for (const r of change.resealed) {
      if (!(r.sealed instanceof Uint8Array) || !(r.from instanceof Uint8Array)) {
        throw new TypeError(`resealed ${r.kind} ${r.name}: sealed and from must be Uint8Arrays`);
      }
    }
    return this.write({ write: { op: "switchCustody", change }, events: [event] });
  }

  async createKey(key: KeyRecord, first: KeyVersionRecord, event: AuditEventInput): Promise<void> {
    checkNewKey(key, first);
    checkEvent(event);
    return this.write({ write: { op: "createKey", key, first }, events: [event] });
  }

  async getKey(name: string): Promise<KeyRecord | null> {
    const row = this.read<KeyRow>("SELECT * FROM keys WHERE name = ?", name);
    return row === undefined ? null : keyFromRow(row);
  }

  async listKeys(): Promise<KeyRecord[]> {
    return this.readAll<KeyRow>("SELECT * FROM keys ORDER BY name").map(keyFromRow);
  }

  async getKeyVersions(name: string): Promise<KeyVersionRecord[]> {
    return this.readAll<KeyVersionRow>(
      "SELECT * FROM key_versions WHERE name = ? ORDER BY version",
      name,
    ).map(keyVersionFromRow);
  }

  async addKeyVersion(version: KeyVersionRecord, updatedAt: string, event: AuditEventInput): Promise<void> {
    checkKeyVersion(version);
    checkEvent(event);
    return this.write({ write: { op: "addKeyVersion", version, updatedAt }, events: [event] });
  }

  async replaceKeyMaterial(
    name: string,
    version: number,
    sealedMaterial: Uint8Array,
    updatedAt: string,
    event: AuditEventInput,
  ): Promise<void> {
    if (!(sealedMaterial instanceof Uint8Array) || sealedMaterial.length === 0) {
      throw new TypeError("sealedMaterial must be a non-empty Uint8Array");
    }
    checkEvent(event);
    return this.write({
      write: { op: "replaceKeyMaterial", name, version, sealedMaterial, updatedAt },
      events: [event],
    });
  }

  async updateKey(name: string, patch: KeyPatch, updatedAt: string, event: AuditEventInput): Promise<void> {
    checkPatch(patch);
    checkEvent(event);
    return this.write({ write: { op: "updateKey", name, patch, updatedAt }, events: [event] });
  }

  async destroyKey(name: string, updatedAt: string, event: AuditEventInput): Promise<void> {
    checkEvent(event);
    return this.write({ write: { op: "destroyKey", name, updatedAt }, events: [event] });
  }

  async putToken(token: TokenRecord, event: AuditEventInput): Promise<void> {
    checkEvent(event);
    return this.write({ write: { op: "putToken", token }, events: [event] });
  }

  async getToken(hash: string): Promise<TokenRecord | null> {
    const row = this.read<TokenRow>("SELECT * FROM tokens WHERE hash = ?", hash);
    return row === undefined ? null : tokenFromRow(row);
  }

  async listTokens(): Promise<TokenRecord[]> {
    return this.readAll<TokenRow>(LIST_TOKENS_SQL).map(tokenFromRow);
  }

  async revokeToken(hash: string, event: AuditEventInput): Promise<void> {
    checkEvent(event);
    return this.write({ write: { op: "revokeToken", hash }, events: [event] });
  }

  async touchToken(hash: string, at: string): Promise<void> {
    return this.write({ write: { op: "touchToken", hash, at }, events: [] });
  }

  async putReview(review: ReviewRecord, event: AuditEventInput): Promise<void> {
    checkEvent(event);
    return this.write({ write: { op: "putReview", review }, events: [event] });
  }

  async getReview(id: string): Promise<ReviewRecord | null> {
    const row = this.read<ReviewRow>("SELECT * FROM reviews WHERE id = ?", id);
    return row === undefined ? null : reviewFromRow(row);
  }

  async listReviews(filter: { open?: boolean } = {}): Promise<ReviewRecord[]> {
    return this.readAll<ReviewRow>(filter.open ? LIST_REVIEWS_SQL.open : LIST_REVIEWS_SQL.all).map(
      reviewFromRow,
    );
  }

  async closeReview(id: string, close: ReviewClose, event: AuditEventInput): Promise<void> {
    checkEvent(event);
    return this.write({ write: { op: "closeReview", id, close }, events: [event] });
  }

  async putApproval(approval: ApprovalRecord, event: AuditEventInput): Promise<void> {
    checkApproval(approval);
    checkEvent(event);
    return this.write({ write: { op: "putApproval", approval }, events: [event] });
  }

  async getApproval(id: string): Promise<ApprovalRecord | null> {
    const row = this.read<ApprovalRow>(APPROVAL_SQL.one, id);
    return row === undefined ? null : approvalFromRows(row, this.readAll<VoteRow>(APPROVAL_SQL.votes, id));
  }

  async listApprovals(filter: { state?: ApprovalState } = {}): Promise<ApprovalRecord[]> {
    const rows =
      filter.state === undefined
        ? this.readAll<ApprovalRow>(APPROVAL_SQL.all)
        : this.readAll<ApprovalRow>(APPROVAL_SQL.inState, filter.state);
    return rows.map((r) => approvalFromRows(r, this.readAll<VoteRow>(APPROVAL_SQL.votes, r.id)));
  }

  async approveApproval(id: string, vote: ApprovalVote, event: AuditEventInput): Promise<void> {
    checkEvent(event);
    return this.write({ write: { op: "approveApproval", id, vote }, events: [event] });
  }

  async denyApproval(id: string, denial: ApprovalDenial, event: AuditEventInput): Promise<void> {
    checkEvent(event);
    return this.write({ write: { op: "denyApproval", id, denial }, events: [event] });
  }

  async consumeApproval(id: string, use: ApprovalUse, event: AuditEventInput): Promise<void> {
    checkEvent(event);
    return this.write({ write: { op: "consumeApproval", id, use }, events: [event] });
  }

  async appendAudit(events: AuditEventInput[]): Promise<void> {
    checkEvents(events);
    if (events.length === 0) return;
    return this.write({ write: { op: "appendAudit" }, events });
  }

  async readAudit(query: AuditQuery): Promise<ChainedAuditEvent[]> {
    return this.searchAudit({ fromSeq: query.fromSeq, limit: query.limit });
  }

  /** readAudit with filters, for investigations; events come in seq order. */
  async searchAudit(filter: AuditFilter): Promise<ChainedAuditEvent[]> {
    const { sql, params } = auditQuery(filter);
    return this.readAll<AuditRow>(sql, ...params).map(auditFromRow);
  }

  async auditSize(): Promise<number> {
    return this.read<{ size: number | null }>("SELECT max(seq) AS size FROM audit_events")?.size ?? 0;
  }

  async readLeafHashes(fromSeq: number, toSeq: number): Promise<Uint8Array[]> {
    if (
      !Number.isSafeInteger(fromSeq) ||
      !Number.isSafeInteger(toSeq) ||
      fromSeq < 1 ||
      toSeq < fromSeq - 1
    ) {
      throw new RangeError(`leaf range ${fromSeq}..${toSeq} is not valid`);
    }
    const rows = this.readAll<{ leaf: Uint8Array }>(
      "SELECT leaf FROM audit_events WHERE seq BETWEEN ? AND ? ORDER BY seq",
      fromSeq,
      toSeq,
    );
    if (rows.length !== toSeq - fromSeq + 1) {
      throw new RangeError(`the log holds ${rows.length} of events ${fromSeq}..${toSeq}`);
    }
    return rows.map((r) => new Uint8Array(r.leaf));
  }

  async readSubtreeHashes(refs: readonly { level: number; index: number }[]): Promise<Uint8Array[]> {
    if (!Array.isArray(refs) || refs.length > 128) throw new RangeError("ask for 0 to 128 subtrees");
    return refs.map(({ level, index }) => {
      if (
        !Number.isSafeInteger(level) ||
        level < 0 ||
        level > 62 ||
        !Number.isSafeInteger(index) ||
        index < 0
      ) {
        throw new RangeError(`subtree ${level}/${index} is not valid`);
      }
      const row =
        level === 0
          ? this.read<{ hash: Uint8Array }>(SUBTREE_SQL.leaf, index + 1)
          : this.read<{ hash: Uint8Array }>(SUBTREE_SQL.node, level, index);
      if (row === undefined) throw new RangeError(`the log holds no complete subtree ${level}/${index}`);
      return new Uint8Array(row.hash);
    });
  }

  async putTreeHead(head: TreeHeadRecord): Promise<void> {
    if (!Number.isSafeInteger(head.size) || head.size < 1) throw new RangeError("head.size must be ≥ 1");
    if (!(head.root instanceof Uint8Array) || head.root.length !== 32)
      throw new TypeError("head.root must be 32 bytes");
    if (!(head.signature instanceof Uint8Array) || head.signature.length !== 64) {
      throw new TypeError("head.signature must be 64 bytes");
    }
    return this.write({ write: { op: "putTreeHead", head }, events: [] });
  }

  async getTreeHeadAtMost(size: number): Promise<TreeHeadRecord | null> {
    if (!Number.isSafeInteger(size)) throw new RangeError(`size must be an integer, got ${size}`);
    return headFromRow(
      this.read<HeadRow>("SELECT * FROM audit_heads WHERE size <= ? ORDER BY size DESC LIMIT 1", size),
    );
  }

  async getTreeHead(size?: number): Promise<TreeHeadRecord | null> {
    const row =
      size === undefined
        ? this.read<HeadRow>("SELECT * FROM audit_heads ORDER BY size DESC LIMIT 1")
        : this.read<HeadRow>("SELECT * FROM audit_heads WHERE size = ?", size);
    return headFromRow(row);
  }

  async putCosignature(c: CosignatureRecord): Promise<void> {
    if (typeof c.witness !== "string") throw new TypeError("cosignature.witness must be a string");
    if (!Number.isSafeInteger(c.size) || c.size < 1) throw new RangeError("cosignature.size must be ≥ 1");
    for (const [field, value, length] of [
      ["witnessKey", c.witnessKey, 32],
      ["root", c.root, 32],
      ["signature", c.signature, 64],
    ] as const) {
      if (!(value instanceof Uint8Array) || value.length !== length) {
        throw new TypeError(`cosignature.${field} must be ${length} bytes`);
      }
    }
    for (const field of ["timestamp", "cosignedAt"] as const) {
      if (!Number.isSafeInteger(c[field]) || c[field] < 0) {
        throw new RangeError(`cosignature.${field} must be a non-negative integer`);
      }
    }
    return this.write({ write: { op: "putCosignature", cosignature: c }, events: [] });
  }

  async getCosignatures(size?: number): Promise<CosignatureRecord[]> {
    const rows =
      size === undefined
        ? this.readAll<CosignatureRow>(
            `SELECT c.* FROM audit_cosignatures c
             WHERE c.size = (SELECT max(size) FROM audit_cosignatures WHERE witness_key = c.witness_key)
             ORDER BY c.witness, c.witness_key`,
          )
        : this.readAll<CosignatureRow>(
            "SELECT * FROM audit_cosignatures WHERE size = ? ORDER BY witness, witness_key",
            size,
          );
    return rows.map(cosignatureFromRow);
  }

  /** Test hook: kills the writer thread as a crash would; the store starts a new one. */
  killWriterForTesting(): Promise<void> {
    return this.writer.killWriterForTesting();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The reader goes first so that the writer, closing last, checkpoints the
    // WAL into the database file and removes it.
    this.reader.close();
    await this.writer.close();
  }

  private write(unit: WriteUnit): Promise<void> {
    if (this.closed) return Promise.reject(new StoreUnavailableError("store is closed"));
    return this.writer.submit(unit);
  }

  private statement(sql: string): Database.Statement {
    if (this.closed) throw new StoreUnavailableError("store is closed");
    let st = this.statements.get(sql);
    if (st === undefined) {
      st = this.reader.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  /** A read failure (I/O error, corrupt page) is the store being unavailable, not a bug of the caller. */
  private read<T>(sql: string, ...params: Array<string | number>): T | undefined {
    try {
      return this.statement(sql).get(...params) as T | undefined;
    } catch (err) {
      throw asUnavailable(err);
    }
  }

  private readAll<T>(sql: string, ...params: Array<string | number>): T[] {
    try {
      return this.statement(sql).all(...params) as T[];
    } catch (err) {
      throw asUnavailable(err);
    }
  }
}

function asUnavailable(err: unknown): Error {
  if (err instanceof Database.SqliteError)
    return new StoreUnavailableError(`read failed: ${err.message}`, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}
