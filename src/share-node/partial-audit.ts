/**
 * The share node's own audit: one JSON line per partial given and per DKG or
 * refresh round taken part in, appended to DATA_DIR/threshold-audit.jsonl and
 * flushed to disk (fdatasync) before the answer leaves (fail-closed: no
 * record, no partial). The write is started before the partial is computed
 * and awaited after, so the disk flush overlaps the elliptic-curve work
 * instead of adding to it. Append-only by convention and file mode, not by
 * cryptography: unlike the custos node's Merkle log this file can be
 * rewritten by whoever runs the share node, which is acceptable because that
 * operator is the party the record is for; the custos node keeps its own
 * tamper-evident record of every unwrap it asked for.
 *
 * Refused requests are not written one by one: anyone who can reach the port
 * can send them, and a line plus an fdatasync each let a flood grow the file
 * and hold the disk busy (issue 10, finding 6). They are counted in memory per
 * route and reason, and one `refused.summary` line with the counts is
 * written per interval (default a minute) that saw any, and on shutdown.
 * Distinct (route, reason) pairs are capped so the counters stay small.
 */
import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";

export const PARTIAL_AUDIT_FILE = "threshold-audit.jsonl";
export const REFUSAL_SUMMARY_MS = 60_000;
/** Beyond this many (route, reason) pairs in one interval, the rest count under route "other". */
const MAX_REFUSAL_KEYS = 64;

export class PartialAudit {
  readonly path: string;
  #file: Promise<FileHandle> | null = null;
  #refusals = new Map<string, { route: string; reason: string; count: number }>();
  #since: string | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(
    dataDir: string,
    private readonly summaryMs = REFUSAL_SUMMARY_MS,
  ) {
    this.path = join(dataDir, PARTIAL_AUDIT_FILE);
  }

  /** Resolves once the line is on disk; rejects if it cannot be written (the caller then refuses). */
  async record(entry: Record<string, unknown>): Promise<void> {
    const line = `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`;
    this.#file ??= open(this.path, "a", 0o600);
    let file: FileHandle;
    try {
      file = await this.#file;
    } catch (err) {
      this.#file = null;
      throw err;
    }
    // One write of a whole line on an O_APPEND descriptor: concurrent records do not interleave.
    await file.write(line);
    await file.datasync();
  }

  /** Counts one refused request; written later in a `refused.summary` line, never synchronously. */
  refused(route: string, reason: string): void {
    let key = `${route}\n${reason}`;
    if (!this.#refusals.has(key) && this.#refusals.size >= MAX_REFUSAL_KEYS) {
      route = "other";
      reason = "other";
      key = "other\nother";
    }
    const slot = this.#refusals.get(key) ?? { route, reason, count: 0 };
    slot.count += 1;
    this.#refusals.set(key, slot);
    this.#since ??= new Date().toISOString();
    this.#timer ??= setTimeout(() => {
      this.#timer = null;
      this.flushRefusals().catch(() => undefined); // a full disk: the counts are lost, the node keeps going
    }, this.summaryMs).unref();
  }

  /** Writes the counted refusals as one line (nothing when there are none). */
  async flushRefusals(): Promise<void> {
    if (this.#refusals.size === 0) return;
    const refusals = [...this.#refusals.values()];
    const since = this.#since;
    this.#refusals = new Map();
    this.#since = null;
    const total = refusals.reduce((n, r) => n + r.count, 0);
    await this.record({ op: "refused.summary", since, total, refusals });
  }

  async close(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.flushRefusals().catch(() => undefined);
    const file = this.#file;
    this.#file = null;
    await (await file?.catch(() => null))?.close();
  }
}
