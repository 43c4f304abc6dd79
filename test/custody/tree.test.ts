/**
 * Custody trees (docs/FORMATS.md §5.5–§5.7) on the example the issue names,
 * `2 of {2-of-3 custodians of hospital A, 2-of-3 of B, 2-of-3 of C}`: every
 * minimal satisfying set of custodians unseals a real SealManager on a real
 * store, every set one short does not (and seal-status says which gate is
 * short), a wrong share at any depth is refused naming its path. The split
 * itself is checked exhaustively on a three-level tree, and the flat k-of-N
 * reads back as a one-gate tree.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Auditor } from "../../src/audit/auditor.js";
import { b64u, hex, randomBytes } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";
import { Secret } from "../../src/crypto/secret.js";
import { NodeIdentity } from "../../src/custody/node-identity.js";
import { NodeShares } from "../../src/custody/node-shares.js";
import { SealManager } from "../../src/custody/seal.js";
import { checkTree, type GateInput, leaves, type TreeInput, treeOf } from "../../src/custody/tree.js";
import {
  makeTreeUnsealSubmission,
  openTreeShareFile,
  type TreeShareFile,
} from "../../src/custody/tree-share-format.js";
import { combineOverTree, splitOverTree } from "../../src/custody/tree-split.js";
import { DirectoryRepository } from "../../src/repository/directory.js";
import { shareKey } from "../../src/repository/share-repository.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite.js";
import { subsets } from "../helpers/subsets.js";

const HOSPITALS = { a: ["a1", "a2", "a3"], b: ["b1", "b2", "b3"], c: ["c1", "c2", "c3"] };
const people = Object.values(HOSPITALS)
  .flat()
  .map((id) => ({ id, ...generateX25519KeyPair() }));
const key = (id: string) => b64u.encode(people.find((p) => p.id === id)!.publicKey);

const hospitalTree: TreeInput = {
  threshold: 2,
  of: Object.entries(HOSPITALS).map(([h, ids]) => ({
    name: `hospital-${h}`,
    threshold: 2,
    of: ids.map((id) => ({ custodian: id, publicKey: key(id) })),
  })),
};

/** Minimal satisfying sets of the hospital tree: 2 hospitals × 2 custodians each. */
function minimalHospitalSets(): string[][] {
  const groups = Object.values(HOSPITALS);
  return subsets(groups, 2).flatMap(([g1, g2]) =>
    subsets(g1!, 2).flatMap((p1) => subsets(g2!, 2).map((p2) => [...p1, ...p2])),
  );
}

describe("custody tree split and combine", () => {
  it("2 of {2-of-3 A, B, C}: all 27 minimal sets give the key back, every set one short gives nothing", async () => {
    const rk = Secret.random(32);
    const split = await splitOverTree(rk, hospitalTree, randomBytes(16));
    const pathOf = (id: string) => leaves(split.tree).find((l) => l.id === id)!.path;
    const sets = minimalHospitalSets();
    expect(sets).toHaveLength(27);
    for (const set of sets) {
      const values = new Map(set.map((id) => [pathOf(id), split.values.get(pathOf(id))!]));
      expect(hex.encode((await combineOverTree(split.tree, values))!)).toBe(hex.encode(rk.reveal()));
      for (const drop of set) {
        const short = new Map([...values].filter(([p]) => p !== pathOf(drop)));
        expect(await combineOverTree(split.tree, short)).toBeNull();
      }
    }
    // Three custodians of one hospital are still one hospital.
    const one = new Map(HOSPITALS.a.map((id) => [pathOf(id), split.values.get(pathOf(id))!]));
    expect(await combineOverTree(split.tree, one)).toBeNull();
  });

  it("a three-level tree with a 1-of gate: leaves grow one byte per t ≥ 2 gate, paths are positional", async () => {
    const tree: GateInput = {
      threshold: 2,
      of: [
        { repository: "r1" },
        {
          threshold: 1,
          of: [{ repository: "r2" }, { threshold: 2, of: [{ repository: "r3" }, { repository: "r4" }] }],
        },
      ],
    };
    const rk = Secret.random(32);
    const split = await splitOverTree(rk, tree, randomBytes(16));
    expect([...split.values.keys()]).toEqual([
      "root/repository:r1",
      "root/2/repository:r2",
      "root/2/2/repository:r3",
      "root/2/2/repository:r4",
    ]);
    expect(split.values.get("root/repository:r1")!.length).toBe(33);
    expect(split.values.get("root/2/repository:r2")!.length).toBe(33);
    expect(split.values.get("root/2/2/repository:r4")!.length).toBe(34);
    const pick = (...paths: string[]) => new Map(paths.map((p) => [p, split.values.get(p)!]));
    const good = [
      ["root/repository:r1", "root/2/repository:r2"],
      ["root/repository:r1", "root/2/2/repository:r3", "root/2/2/repository:r4"],
    ];
    for (const set of good) {
      expect(hex.encode((await combineOverTree(split.tree, pick(...set)))!)).toBe(hex.encode(rk.reveal()));
    }
    for (const set of [["root/repository:r1", "root/2/2/repository:r3"], ["root/2/repository:r2"]]) {
      expect(await combineOverTree(split.tree, pick(...set))).toBeNull();
    }
  });

  it("refuses bad trees with a message naming the gate or leaf", () => {
    const bad = (tree: GateInput, message: RegExp) => expect(() => checkTree(tree)).toThrow(message);
    bad({ threshold: 3, of: [{ repository: "x" }, { repository: "y" }] }, /gate root has threshold 3/);
    bad(
      { threshold: 1, of: [{ repository: "x" }, { threshold: 1, of: [{ repository: "x" }] }] },
      /repository:x appears twice/,
    );
    bad({ threshold: 1, of: [{ tpm: "n1" }] }, /at least two/);
    bad({ threshold: 1, of: [{ tpm: "n1" }, { tpm: "n2" }] }, /at most one tpm leaf/);
    let deep: GateInput = { threshold: 1, of: [{ repository: "z" }, { repository: "w" }] };
    for (let i = 0; i < 6; i++) deep = { threshold: 1, of: [deep] };
    bad(deep, /nested deeper/);
  });
});

describe("SealManager over the hospital tree", () => {
  let dir: string;
  let store: SqliteStore;
  let seal: SealManager;
  let files: TreeShareFile[];

  const submission = async (id: string, corrupt = false) => {
    const status = seal.status();
    const p = people.find((x) => x.id === id)!;
    const payload = await openTreeShareFile(files.find((f) => f.custodian === id)!, p.privateKey);
    const v = payload.value.reveal();
    if (corrupt) v[3] = (v[3] ?? 0) ^ 0x01;
    return makeTreeUnsealSubmission(
      payload,
      "unseal",
      hex.decode(status.nonce!, "nonce"),
      b64u.decode(status.ceremonyPublicKey!, "key"),
    );
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "custos-tree-"));
    store = await openSqliteStore(join(dir, "custos.db"));
    seal = await SealManager.open(store, new Auditor(store));
    const init = await seal.initTree(hospitalTree);
    files = init.shareFiles;
    expect(files.map((f) => f.path)).toContain("root/2/custodian:b2");
    await seal.seal("test");
  });

  afterAll(async () => {
    seal.shutdown();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("every minimal satisfying set unseals; every set one short does not, and seal-status names the short gate", async () => {
    for (const set of minimalHospitalSets()) {
      for (const drop of set) {
        for (const id of set.filter((x) => x !== drop)) await seal.submit(await submission(id));
        const status = seal.status();
        expect(status.sealed).toBe(true);
        expect(status.tree?.satisfied).toBe(false);
        expect(status.tree?.missing).toBe(1);
        await seal.reset("test");
      }
      for (const id of set) await seal.submit(await submission(id));
      expect(seal.sealed, `set ${set.join(",")}`).toBe(false);
      await seal.seal("test");
    }
  }, 120_000);

  it("a wrong share at depth 2 is refused naming its path; the others stay accepted", async () => {
    await seal.submit(await submission("a1"));
    await expect(seal.submit(await submission("b3", true))).rejects.toThrow(
      "share at root/2/custodian:b3 refused: it does not match its commitment",
    );
    const status = seal.status();
    expect(status.submitted).toEqual(["a1"]);
    const a = status.tree!.of[0]!;
    expect(a).toMatchObject({ path: "root/1", name: "hospital-a", have: 1, missing: 1 });
    await seal.reset("test");
  });

  it("refuses a flat custos-unseal/v3 submission on a tree node, and unknown paths, by name", async () => {
    const sub = await submission("a1");
    await expect(seal.submit({ ...sub, path: "root/1/custodian:zed" })).rejects.toThrow(
      "share at root/1/custodian:zed refused: no custodian leaf",
    );
    await expect(
      seal.submit({
        format: "custos-unseal/v3",
        ceremony: "unseal",
        nonce: sub.nonce,
        custodian: "a1",
        enc: sub.enc,
        ciphertext: sub.ciphertext,
      }),
    ).rejects.toThrow(/format does not match/);
  });

  it("keeps the tree across a reopen of the store", async () => {
    const config = await store.getSealConfig();
    expect(config?.tree).toBeDefined();
    expect(treeOf(config!).of).toHaveLength(3);
    expect(config?.custodians.map((c) => c.id)).toEqual(Object.values(HOSPITALS).flat());
  });
});

describe("the flat k-of-N form reads as a one-gate tree", () => {
  it("seal-status shows a gate of custodians with what is missing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "custos-flat-"));
    const store = await openSqliteStore(join(dir, "custos.db"));
    const seal = await SealManager.open(store, new Auditor(store));
    try {
      await seal.init(
        2,
        people.slice(0, 3).map((p) => ({ id: p.id, publicKey: b64u.encode(p.publicKey) })),
      );
      await seal.seal("test");
      const tree = seal.status().tree!;
      expect(tree).toMatchObject({ path: "root", threshold: 2, have: 0, missing: 2, satisfied: false });
      expect(tree.of.map((l) => l.path)).toEqual([
        "root/custodian:a1",
        "root/custodian:a2",
        "root/custodian:a3",
      ]);
      expect((await store.getSealConfig())?.tree).toBeUndefined();
    } finally {
      seal.shutdown();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a wrong share three levels down", () => {
  it("is named with its full path, and the tree is still satisfied around it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "custos-deep-"));
    const store = await openSqliteStore(join(dir, "custos.db"));
    const identity = NodeIdentity.generate();
    const repos = new Map(
      ["r1", "r2", "r3", "r4", "r5"].map((r) => [r, new DirectoryRepository(join(dir, r))]),
    );
    const open = (without: string[]) =>
      SealManager.open(store, new Auditor(store), {
        identity,
        nodeShares: new NodeShares({
          identity,
          repositories: new Map([...repos].filter(([r]) => !without.includes(r))),
        }),
      });
    try {
      const seal = await open([]);
      const { initId } = await seal.initTree({
        threshold: 2,
        of: [
          { repository: "r1" },
          {
            threshold: 1,
            of: [
              { repository: "r2" },
              { threshold: 2, of: [{ repository: "r3" }, { repository: "r4" }, { repository: "r5" }] },
            ],
          },
        ],
      });
      seal.shutdown();
      // r4's file swapped for r3's: well-formed, but labelled for another path.
      const r3 = (await repos.get("r3")!.get(shareKey(initId, "root/2/2/repository:r3")))!;
      await repos.get("r4")!.put(shareKey(initId, "root/2/2/repository:r4"), r3);
      const short = await open(["r2", "r5"]);
      const err = (await short.unsealFromNodeShares().catch((e: Error) => e)) as Error;
      expect(err.message).toContain("root/2/2 needs 1 more of 2");
      expect(err.message).toContain("root/2/2/repository:r4: bad share:");
      expect(err.message).toContain("root/2/2/repository:r5: repository 'r5' is not configured on this node");
      short.shutdown();
      const enough = await open(["r2"]);
      const { failures } = await enough.unsealFromNodeShares();
      expect(enough.sealed).toBe(false);
      expect(failures.map((f) => f.path)).toContain("root/2/repository:r2");
      enough.shutdown();
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
