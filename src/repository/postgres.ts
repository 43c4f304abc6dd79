/**
 * A share repository in a PostgreSQL table (`pg`): one row per share,
 * `(id text primary key, share bytea, stored_at timestamptz)`, created on
 * first use. The connection string is a credential: it lives in the node's
 * configuration, is handed to `pg` and to nothing else — never to a log line
 * or an error message (pg's errors name hosts and users, not passwords, and
 * we pass on only their message). Connections come from a small pool with
 * connect and statement timeouts, so an unreachable database answers with an
 * error quickly instead of holding an unseal hostage. A read asks the server
 * for the row's length first and its bytes only when they fit a share
 * (MAX_SHARE_BYTES): a table someone filled with a gigabyte is refused, not
 * transferred.
 */
import pg from "pg";
import {
  assertShareBytes,
  assertShareKey,
  MAX_SHARE_BYTES,
  type ShareRepository,
} from "./share-repository.js";

/** `table` or `schema.table`, lower-case identifiers: quoted as they are, never interpolated from input. */
export const TABLE_RE = /^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$/;

export interface PostgresRepositoryOptions {
  connectionString: string;
  table?: string;
  timeoutMs?: number;
}

export class PostgresRepository implements ShareRepository {
  readonly #pool: pg.Pool;
  readonly #table: string;
  #ready: Promise<void> | null = null;

  constructor({ connectionString, table = "custos_shares", timeoutMs = 5000 }: PostgresRepositoryOptions) {
    if (typeof connectionString !== "string" || connectionString.length === 0) {
      throw new TypeError("connectionString must be a non-empty string");
    }
    if (!TABLE_RE.test(table)) throw new RangeError(`table must match ${TABLE_RE.source}`);
    this.#table = table
      .split(".")
      .map((part) => `"${part}"`)
      .join(".");
    this.#pool = new pg.Pool({
      connectionString,
      max: 2,
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      idleTimeoutMillis: 10_000,
      allowExitOnIdle: true,
    });
    // An idle client's error (server restarted) must not crash the process.
    this.#pool.on("error", () => {});
  }

  #ensureTable(): Promise<void> {
    this.#ready ??= this.#pool
      .query(
        `CREATE TABLE IF NOT EXISTS ${this.#table} (
           id text PRIMARY KEY, share bytea NOT NULL, stored_at timestamptz NOT NULL DEFAULT now())`,
      )
      .then(
        () => undefined,
        (err: unknown) => {
          this.#ready = null;
          throw err;
        },
      );
    return this.#ready;
  }

  async put(key: string, share: Uint8Array): Promise<void> {
    assertShareKey(key);
    assertShareBytes(share);
    await this.#ensureTable();
    await this.#pool.query(
      `INSERT INTO ${this.#table} (id, share) VALUES ($1, $2)
       ON CONFLICT (id) DO UPDATE SET share = EXCLUDED.share, stored_at = now()`,
      [key, Buffer.from(share)],
    );
  }

  async get(key: string): Promise<Uint8Array | null> {
    assertShareKey(key);
    const result = await this.#pool.query<{ size: number; share: Buffer | null }>(
      `SELECT octet_length(share) AS size, CASE WHEN octet_length(share) <= $2 THEN share END AS share
         FROM ${this.#table} WHERE id = $1`,
      [key, MAX_SHARE_BYTES],
    );
    const row = result.rows[0];
    if (!row) return null;
    if (row.share === null)
      throw new RangeError(
        `table ${this.#table} holds ${row.size} bytes for this key, more than a share's ${MAX_SHARE_BYTES}`,
      );
    return new Uint8Array(row.share);
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  toString(): string {
    return `PostgresRepository(${this.#table})`;
  }
}
