/**
 * The store's custody switch (src/store/sqlite-custody.ts, docs/FORMATS.md
 * §5.9) on a real SQLite file: one transaction or nothing. Refused when the
 * init id moved, when the re-sealed records are not exactly the stored ones
 * (one missing, one replaced meanwhile), when a record is not of the next
 * generation or the generation skips; applied, every record is replaced and
 * the configuration with it, and from then on a key write sealed under the
 * old generation is refused while the new generation's is taken.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ROOT_KEY_NAME, wrap } from "../../src/crypto/envelope.js";
import { SoftwareKeyHandle } from "../../src/crypto/key-handle.js";
import { Secret } from "../../src/crypto/secret.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite.js";
import { sealedGeneration } from "../../src/store/sqlite-custody.js";
import type { CustodySwitch, KeyVersionRecord, SealedRecord } from "../../src/store/store.js";
import { ev, sealConfig, token } from "./contract.js";

const T = "2026-01-01T00:00:00.000Z";
const oldRoot = new SoftwareKeyHandle(Secret.random(32));
const newRoot = new SoftwareKeyHandle(Secret.random(32));
const seal = (root: SoftwareKeyHandle, g: number, what: string) =>
  wrap(root, ROOT_KEY_NAME, g, new TextEncoder().encode(what), { "custos.record": what });

let dir: string;
let store: SqliteStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "custos-switch-"));
  store = await openSqliteStore(join(dir, "custos.db"));
  await store.initialize(
    sealConfig(),
    { "audit-key": await seal(oldRoot, 1, "audit") },
    token("t-root"),
    ev(),
  );
  const v1: KeyVersionRecord = {
    name: "k",
    version: 1,
    state: "enabled",
    sealedMaterial: await seal(oldRoot, 1, "k1"),
    createdAt: T,
  };
  await store.createKey(
    {
      name: "k",
      protection: "software",
      state: "enabled",
      latestVersion: 1,
      minDecryptionVersion: 1,
      rotationPeriodSeconds: null,
      deletionAt: null,
      createdAt: T,
      updatedAt: T,
    },
    v1,
    ev(),
  );
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function rotation(records: SealedRecord[], generation = 2): Promise<CustodySwitch> {
  const config = { ...sealConfig(), initId: "f".repeat(32), kcv: "bmV3", rootGeneration: generation };
  const resealed = await Promise.all(
    records.map(async (r) => ({
      ...r,
      from: r.sealed,
      sealed: await seal(newRoot, generation, `${r.name}${r.version}`),
    })),
  );
  return { fromInitId: sealConfig().initId, config, resealed };
}

describe("switchCustody", () => {
  it("applies a rotation in one transaction: every record and the configuration", async () => {
    const records = await store.getSealedRecords();
    expect(records.map((r) => `${r.kind}:${r.name}:${r.version}`)).toEqual([
      "key-material:k:1",
      "sys-secret:audit-key:0",
    ]);
    await store.switchCustody(await rotation(records), ev({ operation: "sys.rekey.switch" }));
    expect((await store.getSealConfig())?.rootGeneration).toBe(2);
    for (const r of await store.getSealedRecords()) expect(sealedGeneration(r.sealed)).toBe(2);
  });

  it("refuses a moved init id, a missing record, a record replaced meanwhile, a wrong or skipped generation; nothing changes", async () => {
    const records = await store.getSealedRecords();
    const stale = { ...(await rotation(records)), fromInitId: "e".repeat(32) };
    await expect(store.switchCustody(stale, ev())).rejects.toThrow(/custody changed meanwhile/);
    await expect(store.switchCustody(await rotation(records.slice(1)), ev())).rejects.toThrow(
      /key ring changed/,
    );
    const before = await rotation(records);
    await store.replaceKeyMaterial("k", 1, await seal(oldRoot, 1, "k1-refreshed"), T, ev());
    await expect(store.switchCustody(before, ev())).rejects.toThrow(/key ring changed/);
    const now = await store.getSealedRecords();
    const wrongGen = await rotation(now);
    wrongGen.resealed[0]!.sealed = await seal(newRoot, 3, "x");
    await expect(store.switchCustody(wrongGen, ev())).rejects.toThrow(/not sealed under generation 2/);
    await expect(store.switchCustody(await rotation(now, 3), ev())).rejects.toThrow(/does not follow/);
    const rekeyWithRecords = {
      ...(await rotation(now)),
      config: { ...sealConfig(), initId: "f".repeat(32) },
    };
    await expect(store.switchCustody(rekeyWithRecords, ev())).rejects.toThrow(/re-seals nothing/);
    expect((await store.getSealConfig())?.initId).toBe(sealConfig().initId);
    for (const r of await store.getSealedRecords()) expect(sealedGeneration(r.sealed)).toBe(1);
  });

  it("after a rotation, refuses a key write sealed under the old generation and takes the new one's", async () => {
    await store.switchCustody(await rotation(await store.getSealedRecords()), ev());
    const v2 = (g: number, root: SoftwareKeyHandle) =>
      seal(root, g, "k2").then(
        (m): KeyVersionRecord => ({
          name: "k",
          version: 2,
          state: "enabled",
          sealedMaterial: m,
          createdAt: T,
        }),
      );
    await expect(store.addKeyVersion(await v2(1, oldRoot), T, ev())).rejects.toThrow(
      /generation 1 but generation 2 is active/,
    );
    await store.addKeyVersion(await v2(2, newRoot), T, ev());
    expect((await store.getKeyVersions("k")).map((v) => v.version)).toEqual([1, 2]);
  });
});
