/**
 * Approval requests in SQLite (schema version 6): the tables, their row
 * mapping, the reads and the writer's four writes, kept in one file so the
 * reader and the writer thread share them and the rest of the store is
 * untouched. A request is one row; each approval one row of
 * `approval_votes`, whose primary key makes "one approval per principal" a
 * fact of the database. The rules a caller must hear about (not pending,
 * expired, the requester approving, a different parameter hash) are checked
 * by the writer inside its transaction, so two racing executions cannot
 * both consume a request; CHECK constraints and a trigger restate the
 * requester rules as the last line of defence.
 */
import type Database from "better-sqlite3";
import type { ApprovalDenial, ApprovalRecord, ApprovalState, ApprovalUse, ApprovalVote } from "./store.js";

export const APPROVALS_SCHEMA = `
CREATE TABLE approvals (
  id                   TEXT PRIMARY KEY,
  operation            TEXT    NOT NULL,
  key_name             TEXT,
  params               TEXT    NOT NULL,
  params_hash          TEXT    NOT NULL CHECK (length(params_hash) = 64),
  purpose              TEXT    NOT NULL,
  requester            TEXT    NOT NULL,
  organisation         TEXT    NOT NULL,
  rule                 TEXT    NOT NULL,
  required             INTEGER NOT NULL CHECK (required >= 1),
  reason               TEXT,
  created_at           TEXT    NOT NULL,
  expires_at           TEXT    NOT NULL,
  state                TEXT    NOT NULL CHECK (state IN ('pending', 'denied', 'executed')),
  denied_by            TEXT,
  denied_at            TEXT,
  note                 TEXT,
  executed_by          TEXT,
  executed_at          TEXT,
  execution_request_id TEXT,
  CHECK ((state = 'denied') = (denied_by IS NOT NULL)),
  CHECK ((state = 'executed') = (executed_by IS NOT NULL)),
  CHECK (denied_by IS NULL OR denied_by <> requester),
  CHECK (executed_by IS NULL OR executed_by = requester)
) STRICT;
CREATE INDEX approvals_created ON approvals (created_at, id);
CREATE TABLE approval_votes (
  approval_id  TEXT NOT NULL REFERENCES approvals (id),
  principal    TEXT NOT NULL,
  organisation TEXT NOT NULL,
  roles        TEXT NOT NULL,
  via          TEXT NOT NULL,
  at           TEXT NOT NULL,
  note         TEXT,
  PRIMARY KEY (approval_id, principal)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER approval_votes_not_requester BEFORE INSERT ON approval_votes
WHEN NEW.principal = (SELECT requester FROM approvals WHERE id = NEW.approval_id)
BEGIN SELECT RAISE(ABORT, 'the requester cannot approve their own request'); END;
`;

export interface ApprovalRow {
  id: string;
  operation: string;
  key_name: string | null;
  params: string;
  params_hash: string;
  purpose: string;
  requester: string;
  organisation: string;
  rule: string;
  required: number;
  reason: string | null;
  created_at: string;
  expires_at: string;
  state: string;
  denied_by: string | null;
  denied_at: string | null;
  note: string | null;
  executed_by: string | null;
  executed_at: string | null;
  execution_request_id: string | null;
}

export interface VoteRow {
  approval_id: string;
  principal: string;
  organisation: string;
  roles: string;
  via: string;
  at: string;
  note: string | null;
}

function approvalToRow(a: ApprovalRecord): ApprovalRow {
  return {
    id: a.id,
    operation: a.operation,
    key_name: a.key,
    params: a.params,
    params_hash: a.paramsHash,
    purpose: a.purpose,
    requester: a.requester,
    organisation: a.organisation,
    rule: a.rule,
    required: a.required,
    reason: a.reason,
    created_at: a.createdAt,
    expires_at: a.expiresAt,
    state: a.state,
    denied_by: a.deniedBy,
    denied_at: a.deniedAt,
    note: a.note,
    executed_by: a.executedBy,
    executed_at: a.executedAt,
    execution_request_id: a.executionRequestId,
  };
}

export function approvalFromRows(r: ApprovalRow, votes: readonly VoteRow[]): ApprovalRecord {
  return {
    id: r.id,
    operation: r.operation,
    key: r.key_name,
    params: r.params,
    paramsHash: r.params_hash,
    purpose: r.purpose,
    requester: r.requester,
    organisation: r.organisation,
    rule: r.rule,
    required: r.required,
    reason: r.reason,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    state: r.state as ApprovalState,
    approvals: votes.map((v) => ({
      principal: v.principal,
      organisation: v.organisation,
      roles: JSON.parse(v.roles) as string[],
      via: v.via,
      at: v.at,
      note: v.note,
    })),
    deniedBy: r.denied_by,
    deniedAt: r.denied_at,
    note: r.note,
    executedBy: r.executed_by,
    executedAt: r.executed_at,
    executionRequestId: r.execution_request_id,
  };
}

export const APPROVAL_SQL = {
  one: "SELECT * FROM approvals WHERE id = ?",
  votes: "SELECT * FROM approval_votes WHERE approval_id = ? ORDER BY at, principal",
  all: "SELECT * FROM approvals ORDER BY created_at, id LIMIT 1000",
  inState: "SELECT * FROM approvals WHERE state = ? ORDER BY created_at, id LIMIT 1000",
} as const;

/** Checks on a record before it is queued, on the caller's stack (any store can use them). */
export function checkApproval(a: ApprovalRecord): void {
  for (const f of [
    "id",
    "operation",
    "params",
    "purpose",
    "requester",
    "rule",
    "createdAt",
    "expiresAt",
  ] as const) {
    if (typeof a[f] !== "string" || a[f].length === 0) throw new TypeError(`approval.${f} must be a string`);
  }
  if (!/^[0-9a-f]{64}$/.test(a.paramsHash)) throw new TypeError("approval.paramsHash must be 64 hex digits");
  if (!Number.isSafeInteger(a.required) || a.required < 1) {
    throw new RangeError("approval.required must be a positive integer");
  }
  if (a.state !== "pending" || a.approvals.length !== 0) {
    throw new RangeError("a new approval request is pending and has no approvals yet");
  }
}

type Row = Pick<ApprovalRow, "requester" | "state" | "expires_at" | "params_hash">;

/** The writer's side: insert, approve, deny, consume — each refusal a conflict the caller reports. */
export class ApprovalWrites {
  private readonly insert: Database.Statement<[ApprovalRow]>;
  private readonly select: Database.Statement<[string], Row>;
  private readonly voted: Database.Statement<[string, string], unknown>;
  private readonly insertVote: Database.Statement<[VoteRow]>;
  private readonly deny: Database.Statement<[string, string, string, string]>;
  private readonly consume: Database.Statement<[string, string, string, string]>;

  constructor(
    db: Database.Database,
    private readonly conflict: (message: string) => Error,
  ) {
    this.insert = db.prepare(
      `INSERT INTO approvals (id, operation, key_name, params, params_hash, purpose, requester, organisation,
         rule, required, reason, created_at, expires_at, state, denied_by, denied_at, note, executed_by,
         executed_at, execution_request_id)
       VALUES (@id, @operation, @key_name, @params, @params_hash, @purpose, @requester, @organisation,
         @rule, @required, @reason, @created_at, @expires_at, @state, @denied_by, @denied_at, @note,
         @executed_by, @executed_at, @execution_request_id)`,
    );
    this.select = db.prepare("SELECT requester, state, expires_at, params_hash FROM approvals WHERE id = ?");
    this.voted = db.prepare("SELECT 1 FROM approval_votes WHERE approval_id = ? AND principal = ?");
    this.insertVote = db.prepare(
      `INSERT INTO approval_votes (approval_id, principal, organisation, roles, via, at, note)
       VALUES (@approval_id, @principal, @organisation, @roles, @via, @at, @note)`,
    );
    this.deny = db.prepare(
      "UPDATE approvals SET state = 'denied', denied_by = ?, denied_at = ?, note = ? WHERE id = ? AND state = 'pending'",
    );
    this.consume = db.prepare(
      `UPDATE approvals SET state = 'executed', executed_by = ?, executed_at = ?, execution_request_id = ?
       WHERE id = ? AND state = 'pending'`,
    );
  }

  put(a: ApprovalRecord): void {
    if (this.select.get(a.id) !== undefined) throw this.conflict(`approval ${a.id} already exists`);
    this.insert.run(approvalToRow(a));
  }

  #pending(id: string, at: string): Row {
    const row = this.select.get(id);
    if (row === undefined) throw this.conflict(`no approval request ${id}`);
    if (row.state !== "pending") throw this.conflict(`approval request ${id} is ${row.state}`);
    if (at >= row.expires_at) throw this.conflict(`approval request ${id} expired at ${row.expires_at}`);
    return row;
  }

  approve(id: string, v: ApprovalVote): void {
    const row = this.#pending(id, v.at);
    if (row.requester === v.principal)
      throw this.conflict(`${v.principal} requested ${id} and cannot approve it`);
    if (this.voted.get(id, v.principal) !== undefined) {
      throw this.conflict(`${v.principal} has already approved ${id}`);
    }
    this.insertVote.run({
      approval_id: id,
      principal: v.principal,
      organisation: v.organisation,
      roles: JSON.stringify(v.roles),
      via: v.via,
      at: v.at,
      note: v.note,
    });
  }

  denyRequest(id: string, d: ApprovalDenial): void {
    const row = this.#pending(id, d.at);
    if (row.requester === d.by) throw this.conflict(`${d.by} requested ${id} and cannot deny it`);
    this.deny.run(d.by, d.at, d.note, id);
  }

  consumeRequest(id: string, u: ApprovalUse): void {
    const row = this.#pending(id, u.at);
    if (row.requester !== u.by)
      throw this.conflict(`only ${row.requester}, who requested ${id}, executes it`);
    if (row.params_hash !== u.paramsHash) {
      throw this.conflict(`the parameters differ from those approved under ${id}`);
    }
    if (this.consume.run(u.by, u.at, u.requestId, id).changes !== 1) {
      throw this.conflict(`approval request ${id} was consumed meanwhile`);
    }
  }
}
