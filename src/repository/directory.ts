/**
 * A share repository in a directory: one file per share, named after its key
 * ("/" becomes "+", which keys never contain). Writes are atomic and durable —
 * temporary file, fsync, rename, fsync of the directory — so a crash leaves
 * either the old file or the new one, never half of one. Files and the
 * directory are the owner's alone (0600/0700). The directory may be a mount
 * of another machine's storage; that is what makes it a separate repository.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { assertShareBytes, assertShareKey, type ShareRepository } from "./share-repository.js";

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
    try {
      return new Uint8Array(await readFile(file));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  toString(): string {
    return `DirectoryRepository(${this.dir})`;
  }
}
