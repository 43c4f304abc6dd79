/**
 * Access tokens in SQLite beyond the version-1 table: when each was last
 * used, the policy grant it was minted under (schema version 7), and the
 * writes that add, revoke and touch a token, kept together so the reader
 * and the writer thread share them. Revoking deletes the row — the audit
 * event the revocation commits with is the record — so the next lookup by
 * hash finds nothing and the token is refused on the very next request.
 * Touching records the last use without an audit event (a use is audited by
 * the request itself) and is throttled by the caller.
 */
import type Database from "better-sqlite3";
import type { TokenRecord } from "./store.js";

/** Version 7's change to the tokens table; idempotent, so a file with either column already present is fine. */
export function addTokenColumns(db: Database.Database): void {
  const columns = new Set((db.pragma("table_info(tokens)") as { name: string }[]).map((c) => c.name));
  if (!columns.has("last_used_at")) db.exec("ALTER TABLE tokens ADD COLUMN last_used_at TEXT");
  if (!columns.has("minted_under")) db.exec("ALTER TABLE tokens ADD COLUMN minted_under TEXT");
  db.exec("CREATE INDEX IF NOT EXISTS tokens_created ON tokens (created_at, hash)");
}

export interface TokenRow {
  hash: string;
  principal: string;
  roles: string;
  created_by: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  minted_under: string | null;
}

export function tokenToRow(t: TokenRecord): TokenRow {
  return {
    hash: t.hash,
    principal: t.principal,
    roles: JSON.stringify(t.roles),
    created_by: t.createdBy,
    created_at: t.createdAt,
    expires_at: t.expiresAt ?? null,
    last_used_at: t.lastUsedAt ?? null,
    minted_under: t.mintedUnder ?? null,
  };
}

export function tokenFromRow(r: TokenRow): TokenRecord {
  return {
    hash: r.hash,
    principal: r.principal,
    roles: JSON.parse(r.roles) as string[],
    createdBy: r.created_by,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    lastUsedAt: r.last_used_at ?? null,
    mintedUnder: r.minted_under ?? null,
  };
}

export const LIST_TOKENS_SQL = "SELECT * FROM tokens ORDER BY created_at, hash LIMIT 10000";

export class TokenWrites {
  readonly #exists: Database.Statement<[string], unknown>;
  readonly #insert: Database.Statement<[TokenRow]>;
  readonly #delete: Database.Statement<[string]>;
  readonly #touch: Database.Statement<[string, string, string]>;

  constructor(
    db: Database.Database,
    private readonly conflict: (message: string) => Error,
  ) {
    this.#exists = db.prepare("SELECT 1 FROM tokens WHERE hash = ?");
    this.#insert = db.prepare(
      `INSERT INTO tokens (hash, principal, roles, created_by, created_at, expires_at, last_used_at, minted_under)
       VALUES (@hash, @principal, @roles, @created_by, @created_at, @expires_at, @last_used_at, @minted_under)`,
    );
    this.#delete = db.prepare("DELETE FROM tokens WHERE hash = ?");
    // Only forwards: a late, slower touch never moves the last use back.
    this.#touch = db.prepare(
      "UPDATE tokens SET last_used_at = ? WHERE hash = ? AND (last_used_at IS NULL OR last_used_at < ?)",
    );
  }

  put(token: TokenRecord): void {
    if (this.#exists.get(token.hash) !== undefined) throw this.conflict("token already exists");
    this.#insert.run(tokenToRow(token));
  }

  revoke(hash: string): void {
    if (this.#delete.run(hash).changes === 0) throw this.conflict("no such token (revoked already?)");
  }

  touch(hash: string, at: string): void {
    this.#touch.run(at, hash, at);
  }
}
