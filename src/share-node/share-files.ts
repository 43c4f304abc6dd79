/**
 * Where a share node keeps its scalar shares: one JSON file per share id in
 * `DATA_DIR/threshold/` (docs/FORMATS.md §11.2), mode 0600, written
 * atomically. A file holds the share of the current epoch and, during a
 * refresh, the share of the next one ("pending") until the custos node
 * commits the refresh; committing drops the old share, so a refreshed node no
 * longer holds anything that works with the old verification shares. Shares
 * are read into a Secret for each use and disposed after.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { b64u } from "../crypto/bytes.js";
import { Secret } from "../crypto/secret.js";
import { scalarFromBytes, scalarToBytes } from "../threshold/group.js";
import { Epoch, Index, NodeName, ScalarB64, ShareId } from "../threshold/wire.js";
import { writeFileAtomic } from "./atomic-file.js";

export const SHARE_FILE_FORMAT = "custos-threshold-share/v1";

const Slot = z.object({ epoch: Epoch, share: ScalarB64 }).strict();
export const ShareFile = z
  .object({
    format: z.literal(SHARE_FILE_FORMAT),
    shareId: ShareId,
    key: z.string(),
    version: z.number().int().min(1),
    set: NodeName,
    index: Index,
    threshold: Index,
    current: Slot.nullable(),
    pending: Slot.nullable(),
  })
  .strict();
export type ShareFile = z.infer<typeof ShareFile>;

export class ShareFiles {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, "threshold");
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  path(shareId: string): string {
    return join(this.dir, `${ShareId.parse(shareId)}.json`);
  }

  read(shareId: string): ShareFile | null {
    const path = this.path(shareId);
    if (!existsSync(path)) return null;
    return ShareFile.parse(JSON.parse(readFileSync(path, "utf8")));
  }

  write(file: ShareFile): void {
    writeFileAtomic(this.path(file.shareId), `${JSON.stringify(ShareFile.parse(file))}\n`);
  }

  /** The share for `epoch` (current or pending), as a Secret the caller disposes; null when absent. */
  share(shareId: string, epoch: number): { file: ShareFile; share: Secret } | null {
    const file = this.read(shareId);
    const slot =
      file?.current?.epoch === epoch ? file.current : file?.pending?.epoch === epoch ? file.pending : null;
    if (!file || !slot) return null;
    const bytes = b64u.decode(slot.share, "share");
    scalarFromBytes(bytes, "share", true);
    return { file, share: Secret.of(bytes) };
  }
}

export function encodeShare(s: bigint): string {
  const bytes = scalarToBytes(s);
  const text = b64u.encode(bytes);
  bytes.fill(0);
  return text;
}
