/**
 * Writes a file so that a crash leaves either the old or the new content,
 * never a mix: write a temporary file in the same directory with mode 0600,
 * fsync it, rename it over the target, fsync the directory. Share files are
 * the only copy of a share node's secret; a torn write would lose it.
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { hex, randomBytes } from "../crypto/bytes.js";

export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${hex.encode(randomBytes(6))}.tmp`);
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, typeof data === "string" ? Buffer.from(data, "utf8") : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dir, "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
