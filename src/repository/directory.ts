/**
 * A share repository in a directory: one file per share, named after its key
 * ("/" becomes "+", which keys never contain). Writes are atomic and durable —
 * temporary file, fsync, rename, fsync of the directory — so a crash leaves
 * either the old file or the new one, never half of one. Files and the
 * directory are the owner's alone (0600/0700). The directory may be a mount
 * of another machine's storage; that is what makes it a separate repository,
 * and why a read takes at most MAX_SHARE_BYTES + 1 bytes of a regular file
 * (never a FIFO or device someone put there) before it refuses.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  assertShareBytes,
  assertShareKey,
  MAX_SHARE_BYTES,
  type ShareRepository,
} from "./share-repository.js";

export class DirectoryRepository implements ShareRepository {
  constructor(readonly dir: string) {
    if (typeof dir !== "string" || dir.length === 0) throw new TypeError("dir must be a non-empty path");
  }

  #file(key: string): string {
    assertShareKey(key);
    return join(this.dir, `${key.replaceAll("/", "+")}.share`);
  }

  async put(key: string, share: Uint8Array): Promise<void> {
    const file = this.#file(key);
    assertShareBytes(share);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
    const fd = await open(tmp, "wx", 0o600);
    try {
      await fd.writeFile(share);
      await fd.sync();
    } catch (err) {
      await fd.close();
      await rm(tmp, { force: true });
      throw err;
    }
    await fd.close();
    await rename(tmp, file);
    const dirFd = await open(this.dir, "r");
    try {
      await dirFd.sync();
    } finally {
      await dirFd.close();
    }
  }

  async get(key: string): Promise<Uint8Array | null> {
    const file = this.#file(key);
    let fd: Awaited<ReturnType<typeof open>>;
    try {
      // O_NONBLOCK: opening a FIFO planted under a share's name must not hang the read.
      fd = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
    try {
      const stat = await fd.stat();
      if (!stat.isFile()) throw new Error(`${file} is not a regular file`);
      if (stat.size > MAX_SHARE_BYTES)
        throw new RangeError(`${file} holds ${stat.size} bytes, more than a share's ${MAX_SHARE_BYTES}`);
      const buf = new Uint8Array(MAX_SHARE_BYTES + 1);
      let n = 0;
      for (;;) {
        const { bytesRead } = await fd.read(buf, n, buf.length - n, n);
        if (bytesRead === 0) break;
        n += bytesRead;
        if (n > MAX_SHARE_BYTES)
          throw new RangeError(`${file} grew past a share's ${MAX_SHARE_BYTES} bytes while being read`);
      }
      return buf.slice(0, n);
    } finally {
      await fd.close();
    }
  }

  toString(): string {
    return `DirectoryRepository(${this.dir})`;
  }
}
