/**
 * The share node's own audit: one JSON line per partial given, per DKG or
 * refresh round taken part in, and per refused request, appended to
 * DATA_DIR/threshold-audit.jsonl and fsynced before the answer leaves
 * (fail-closed: no record, no partial). Append-only by convention and by file
 * mode, not by cryptography: unlike the custos node's Merkle log this file
 * can be rewritten by whoever owns the share node, which is acceptable since
 * the share node's operator is exactly the party the record is for; a custos
 * node keeps its own tamper-evident record of every unwrap it asked for.
 */
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";

export const PARTIAL_AUDIT_FILE = "threshold-audit.jsonl";

export class PartialAudit {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, PARTIAL_AUDIT_FILE);
  }

  record(entry: Record<string, unknown>): void {
    const line = `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`;
    const fd = openSync(this.path, "a", 0o600);
    try {
      writeSync(fd, line);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}
