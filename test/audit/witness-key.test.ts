/**
 * Witness key files (docs/FORMATS.md §8.3): written 0600 / public, read back
 * to the same key; a private file whose public key is not its seed's, a
 * public file with a wrong fingerprint, an unknown field and an overwrite are
 * refused.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  generateWitnessKey,
  readWitnessPrivateKeyFile,
  readWitnessPublicKeyFile,
  writeWitnessKeyFiles,
} from "../../src/audit/witness-key.js";
import { FormatError } from "../../src/custody/format-error.js";

const dir = mkdtempSync(join(tmpdir(), "custos-wkey-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("witness key files", () => {
  it("round-trips, with the private file readable by the owner only", () => {
    const key = generateWitnessKey("nyu-mirror");
    const { privatePath, publicPath } = writeWitnessKeyFiles(join(dir, "nyu"), key);
    expect(statSync(privatePath).mode & 0o777).toBe(0o600);
    const priv = readWitnessPrivateKeyFile(privatePath);
    const pub = readWitnessPublicKeyFile(publicPath);
    expect(priv.witness).toBe("nyu-mirror");
    expect(Buffer.from(priv.publicKey)).toEqual(Buffer.from(key.publicKey));
    expect(pub).toEqual({ witness: "nyu-mirror", publicKey: key.publicKey, fingerprint: key.fingerprint });
    expect(String(priv.secretKey)).not.toContain(JSON.parse(readFileSync(privatePath, "utf8")).secretKey);
    expect(() => writeWitnessKeyFiles(join(dir, "nyu"), generateWitnessKey("nyu-mirror"))).toThrow(/exists/);
  });

  it("refuses a private file whose public key is not its seed's", () => {
    const a = generateWitnessKey("a");
    writeWitnessKeyFiles(join(dir, "a"), a);
    const b = generateWitnessKey("b");
    writeWitnessKeyFiles(join(dir, "b"), b);
    const fileA = JSON.parse(readFileSync(join(dir, "a.key"), "utf8"));
    const fileB = JSON.parse(readFileSync(join(dir, "b.key"), "utf8"));
    writeFileSync(join(dir, "mixed.key"), JSON.stringify({ ...fileA, publicKey: fileB.publicKey }));
    expect(() => readWitnessPrivateKeyFile(join(dir, "mixed.key"))).toThrow(/publicKey/);
  });

  it("refuses a public file with a wrong fingerprint or an unknown field, naming the field", () => {
    const c = generateWitnessKey("c");
    writeWitnessKeyFiles(join(dir, "c"), c);
    const pub = JSON.parse(readFileSync(join(dir, "c.pub"), "utf8"));
    const other = JSON.parse(readFileSync(join(dir, "a.pub"), "utf8"));
    writeFileSync(join(dir, "fp.pub"), JSON.stringify({ ...pub, fingerprint: other.fingerprint }));
    writeFileSync(join(dir, "extra.pub"), JSON.stringify({ ...pub, url: "http://x" }));
    for (const [file, field] of [
      ["fp.pub", "fingerprint"],
      ["extra.pub", "url"],
    ]) {
      const err = (() => {
        try {
          readWitnessPublicKeyFile(join(dir, file!));
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(FormatError);
      expect((err as FormatError).field).toBe(field);
    }
    expect(() => readWitnessPublicKeyFile(join(dir, "missing.pub"))).toThrow(/ENOENT/);
  });

  it("refuses a witness name outside the allowed form", () => {
    expect(() => generateWitnessKey("Bad Name")).toThrow(RangeError);
  });
});
