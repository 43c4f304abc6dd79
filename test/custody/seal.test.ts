/**
 * The seal state machine on a real store: racing submissions of one
 * custodian count once; an idle ceremony discards its shares (audited) and
 * starts over with a new nonce; sealing drops the root key.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Auditor } from "../../src/audit/auditor.js";
import { b64u, hex } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";
import type { Secret } from "../../src/crypto/secret.js";
import { makeUnsealSubmission } from "../../src/custody/flat-submission.js";
import { SealManager } from "../../src/custody/seal.js";
import { openShareFile, type ShareFile } from "../../src/custody/share-format.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite.js";
import { type Store, StoreUnavailableError } from "../../src/store/store.js";

describe("SealManager", () => {
  let dir: string;
  let store: SqliteStore;
  let seal: SealManager;
  let files: ShareFile[];
  const people = ["ann", "ben", "cat"].map((id) => ({ id, ...generateX25519KeyPair() }));

  const submission = async (who: { id: string; privateKey: Secret }) => {
    const status = seal.status();
    const payload = await openShareFile(files.find((f) => f.custodian === who.id)!, who.privateKey);
    return makeUnsealSubmission(
      payload,
      "unseal",
      hex.decode(status.nonce!, "nonce"),
      b64u.decode(status.ceremonyPublicKey!, "key"),
    );
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "custos-seal-"));
    store = await openSqliteStore(join(dir, "custos.db"));
    seal = await SealManager.open(store, new Auditor(store), { ceremonyIdleMs: 1500 });
    const init = await seal.init(
      2,
      people.map((p) => ({ id: p.id, publicKey: b64u.encode(p.publicKey) })),
    );
    files = init.shareFiles;
    await seal.seal("test");
  });

  afterEach(async () => {
    seal.shutdown();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("counts one custodian's racing submissions once", async () => {
    const sub = await submission(people[0]!);
    const results = await Promise.allSettled([seal.submit(sub), seal.submit(sub), seal.submit(sub)]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) {
      if (r.status === "rejected") expect((r.reason as Error).message).toContain("already submitted");
    }
    expect(seal.status().progress).toBe(1);
  });

  it("discards the shares of an idle ceremony, audits it, and starts a new one", async () => {
    await seal.submit(await submission(people[0]!));
    const before = seal.status();
    expect(before.progress).toBe(1);
    expect(before.ceremonyExpiresAt).not.toBeNull();
    await new Promise((r) => setTimeout(r, 2500));
    const after = seal.status();
    expect(after).toMatchObject({ sealed: true, progress: 0, ceremonyExpiresAt: null });
    expect(after.nonce).not.toBe(before.nonce);
    const events = await store.readAudit({ fromSeq: 1, limit: 100 });
    expect(
      events.some((e) => e.event.operation === "sys.unseal.reset" && /expired/.test(e.event.reason ?? "")),
    ).toBe(true);
    // A new ceremony still unseals with any two custodians.
    await seal.submit(await submission(people[1]!));
    await seal.submit(await submission(people[2]!));
    expect(seal.sealed).toBe(false);
  });

  it("seals: the root key is gone and key use says so", async () => {
    await seal.submit(await submission(people[0]!));
    await seal.submit(await submission(people[1]!));
    const root = seal.root();
    await seal.seal("test");
    expect(() => seal.root()).toThrow(/sealed/);
    await expect(root.prf(new Uint8Array(1))).rejects.toThrow();
  });

  it("keeps an init whose commit happened although the store reported the outcome unknown", async () => {
    const dir2 = mkdtempSync(join(tmpdir(), "custos-seal-init-"));
    const real = await openSqliteStore(join(dir2, "custos.db"));
    // The writer thread dying right after COMMIT: the write is durable, the caller hears "unavailable".
    const flaky: Store = Object.create(real, {
      initialize: {
        value: async (...args: Parameters<Store["initialize"]>) => {
          await real.initialize(...args);
          throw new StoreUnavailableError("writer thread stopped; outcome unknown");
        },
      },
    });
    const manager = await SealManager.open(flaky, new Auditor(real));
    try {
      const result = await manager.init(
        2,
        people.map((p) => ({ id: p.id, publicKey: b64u.encode(p.publicKey) })),
      );
      expect(result.shareFiles).toHaveLength(3);
      expect(manager.sealed).toBe(false);
      expect((await real.getSealConfig())?.initId).toBe(result.initId);
    } finally {
      manager.shutdown();
      await real.close();
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});
