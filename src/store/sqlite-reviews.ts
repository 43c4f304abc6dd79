/**
 * Break-glass reviews in SQLite (schema version 4): the table, its row
 * mapping, and the two writes, kept in one file so the reader and the
 * writer thread share them and the rest of the store is untouched. The rule
 * that a user never closes their own review is checked twice: by the writer
 * inside its transaction (a conflict the caller can report), and by a CHECK
 * constraint as the last line of defence.
 */
import type Database from "better-sqlite3";
import type { ReviewClose, ReviewRecord } from "./store.js";

export const REVIEWS_SCHEMA = `
CREATE TABLE reviews (
  id           TEXT PRIMARY KEY,
  request_id   TEXT NOT NULL,
  principal    TEXT NOT NULL,
  organisation TEXT NOT NULL,
  operation    TEXT NOT NULL,
  key_name     TEXT,
  purpose      TEXT NOT NULL,
  rule         TEXT NOT NULL,
  reason       TEXT NOT NULL,
  review_roles TEXT NOT NULL,
  created_at   TEXT NOT NULL,
  due_at       TEXT NOT NULL,
  closed_by    TEXT,
  closed_at    TEXT,
  note         TEXT,
  CHECK ((closed_by IS NULL) = (closed_at IS NULL)),
  CHECK (closed_by IS NULL OR closed_by <> principal)
) STRICT;
CREATE INDEX reviews_created ON reviews (created_at, id);
`;

export interface ReviewRow {
  id: string;
  request_id: string;
  principal: string;
  organisation: string;
  operation: string;
  key_name: string | null;
  purpose: string;
  rule: string;
  reason: string;
  review_roles: string;
  created_at: string;
  due_at: string;
  closed_by: string | null;
  closed_at: string | null;
  note: string | null;
}

export function reviewToRow(r: ReviewRecord): ReviewRow {
  return {
    id: r.id,
    request_id: r.requestId,
    principal: r.principal,
    organisation: r.organisation,
    operation: r.operation,
    key_name: r.key,
    purpose: r.purpose,
    rule: r.rule,
    reason: r.reason,
    review_roles: JSON.stringify(r.reviewRoles),
    created_at: r.createdAt,
    due_at: r.dueAt,
    closed_by: r.closedBy,
    closed_at: r.closedAt,
    note: r.note,
  };
}

export function reviewFromRow(r: ReviewRow): ReviewRecord {
  return {
    id: r.id,
    requestId: r.request_id,
    principal: r.principal,
    organisation: r.organisation,
    operation: r.operation,
    key: r.key_name,
    purpose: r.purpose,
    rule: r.rule,
    reason: r.reason,
    reviewRoles: JSON.parse(r.review_roles) as string[],
    createdAt: r.created_at,
    dueAt: r.due_at,
    closedBy: r.closed_by,
    closedAt: r.closed_at,
    note: r.note,
  };
}

export const LIST_REVIEWS_SQL = {
  all: "SELECT * FROM reviews ORDER BY created_at, id LIMIT 1000",
  open: "SELECT * FROM reviews WHERE closed_at IS NULL ORDER BY created_at, id LIMIT 1000",
} as const;

/** The writer's side: insert and close, with the conflicts a caller must hear about. */
export class ReviewWrites {
  private readonly insert: Database.Statement<[ReviewRow]>;
  private readonly select: Database.Statement<[string], { principal: string; closed_at: string | null }>;
  private readonly close: Database.Statement<[string, string, string, string]>;

  constructor(
    db: Database.Database,
    private readonly conflict: (message: string) => Error,
  ) {
    this.insert = db.prepare(
      `INSERT INTO reviews (id, request_id, principal, organisation, operation, key_name, purpose, rule, reason,
         review_roles, created_at, due_at, closed_by, closed_at, note)
       VALUES (@id, @request_id, @principal, @organisation, @operation, @key_name, @purpose, @rule, @reason,
         @review_roles, @created_at, @due_at, @closed_by, @closed_at, @note)`,
    );
    this.select = db.prepare("SELECT principal, closed_at FROM reviews WHERE id = ?");
    this.close = db.prepare("UPDATE reviews SET closed_by = ?, closed_at = ?, note = ? WHERE id = ?");
  }

  put(review: ReviewRecord): void {
    if (this.select.get(review.id) !== undefined) throw this.conflict(`review ${review.id} already exists`);
    this.insert.run(reviewToRow(review));
  }

  closeReview(id: string, c: ReviewClose): void {
    const row = this.select.get(id);
    if (row === undefined) throw this.conflict(`no review ${id}`);
    if (row.closed_at !== null) throw this.conflict(`review ${id} is already closed`);
    if (row.principal === c.closedBy) throw this.conflict(`review ${id} records ${c.closedBy}'s own use`);
    this.close.run(c.closedBy, c.closedAt, c.note, id);
  }
}
