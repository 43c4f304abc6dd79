/**
 * The share node's own audit: one JSON line per partial given, per DKG or
 * refresh round taken part in, and per refused request, appended to
 * DATA_DIR/threshold-audit.jsonl and flushed to disk (fdatasync) before the
 * answer leaves (fail-closed: no record, no partial). The write is started
 * before the partial is computed and awaited after, so the disk flush overlaps
 * the elliptic-curve work instead of adding to it. Append-only by convention
 * and file mode, not by cryptography: unlike the custos node's Merkle log this
 * file can be rewritten by whoever runs the share node, which is acceptable
 * because that operator is the party the record is for; the custos node keeps
 * its own tamper-evident record of every unwrap it asked for.
 */
import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";

export const PARTIAL_AUDIT_FILE = "threshold-audit.jsonl";

export class PartialAudit {
  readonly path: string;
  #file: Promise<FileHandle> | null = null;

  constructor(dataDir: string) {
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

  async close(): Promise<void> {
    const file = this.#file;
    this.#file = null;
    await (await file?.catch(() => null))?.close();
  }
}
