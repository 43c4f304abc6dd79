/**
 * Verified rekey and root rotation (custody/custody-change.ts,
 * docs/FORMATS.md §5.9) on a real node in process: the quorum of the current
 * custody, new shares confirmed one by one — the switch happens only after
 * the last — refusals named, old shares refused and new ones accepted after
 * the switch, every data key wrapped before still unwrapping, the key ring
 * re-sealed under the next root generation, cancel and restart keeping the
 * old custody (the restart audited as abandoning the change), and the
 * store's switch refusing a stale init id or a record of another generation.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { type CustosNode, openNode } from "../../src/api/server.js";
import { unwrap, wrap } from "../../src/crypto/envelope.js";
import type { ShareFile } from "../../src/custody/share-format.js";
import type { TreeShareFile } from "../../src/custody/tree-share-format.js";
import { sealedGeneration } from "../../src/store/sqlite-custody.js";
import { confirmation, type Person, people, pub, submission } from "../helpers/custodians.js";

const CTX = { patient: "p-1" };
let dirs: string[] = [];
let nodes: CustosNode[] = [];

async function open(dir: string): Promise<CustosNode> {
  const node = await openNode({ dataDir: dir, log: pino({ level: "silent" }) });
  nodes.push(node);
  return node;
}

async function fixture() {
  const dir = mkdtempSync(join(tmpdir(), "custos-change-"));
  dirs.push(dir);
  const node = await open(dir);
  const team = people(["alice", "bob", "carol"]);
  const init = await node.seal.init(
    2,
    team.map((p) => ({ id: p.id, publicKey: pub(p) })),
  );
  const who = { principal: "test" };
  await node.keys.create("ehr", null, who, "software");
  await node.keys.create("lab", null, who, "software");
  await node.keys.rotate("lab", who);
  const dek = new Uint8Array(32).fill(7);
  const wrapped: { name: string; version: number; blob: Uint8Array }[] = [];
  for (const [name, version] of [
    ["ehr", 1],
    ["lab", 1],
    ["lab", 2],
  ] as const) {
    const { handle } = await node.keys.usable(name, version);
    wrapped.push({ name, version, blob: await wrap(handle, name, version, dek, CTX) });
  }
  return { dir, node, team, files: init.shareFiles as ShareFile[], dek, wrapped };
}

async function unwrapsAll(node: CustosNode, f: Awaited<ReturnType<typeof fixture>>) {
  for (const w of f.wrapped) {
    const { handle } = await node.keys.usable(w.name, w.version);
    expect(await unwrap(handle, w.blob, CTX)).toEqual(f.dek);
  }
}

const byId = (team: Person[], id: string) => team.find((p) => p.id === id) as Person;

afterEach(async () => {
  for (const n of nodes) await n.close().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  nodes = [];
  dirs = [];
});

describe("rotate-root", () => {
  it("switches only after every new share is confirmed; old shares refused after, data keys intact", async () => {
    const f = await fixture();
    const { node } = f;
    let s = await node.custody.start("rotate-root", undefined, "test");
    expect(s.phase).toBe("quorum");
    s = await node.custody.submit(await submission(f.files[0]!, f.team[0]!, s));
    expect(s.submitted).toEqual(["alice"]);
    s = await node.custody.submit(await submission(f.files[2]!, f.team[2]!, s));
    expect(s.phase).toBe("confirming");
    expect(s.newRootGeneration).toBe(2);
    expect(s.shareFiles).toHaveLength(3);
    const newFiles = s.shareFiles as TreeShareFile[];
    for (const [i, file] of newFiles.entries()) {
      expect(node.seal.rootGeneration).toBe(1); // not before the last confirmation
      await unwrapsAll(node, f);
      s = await node.custody.confirm(await confirmation(file, byId(f.team, file.custodian), s));
      if (i < 2) expect(s.unconfirmed).toHaveLength(2 - i);
    }
    expect(s.active).toBe(false);
    expect(node.seal.rootGeneration).toBe(2);
    expect(node.seal.config?.initId).toBe(newFiles[0]!.initId);
    await unwrapsAll(node, f);
    for (const r of await node.store.getSealedRecords()) expect(sealedGeneration(r.sealed)).toBe(2);

    // After a restart: the old shares are refused, the new ones unseal, nothing is lost.
    await node.close();
    const again = await open(f.dir);
    expect(again.seal.sealed).toBe(true);
    const st = again.seal.status();
    await expect(again.seal.submit(await submission(f.files[0]!, f.team[0]!, st))).rejects.toThrow(/refused/);
    for (const file of newFiles.slice(0, 2)) {
      await again.seal.submit(await submission(file, byId(f.team, file.custodian), again.seal.status()));
    }
    expect(again.seal.sealed).toBe(false);
    await unwrapsAll(again, f);
    const switched = await again.store.searchAudit({ operation: "sys.rekey.switch" });
    expect(switched.at(-1)?.event.reason).toMatch(/root generation 1\) to init id .* \(root generation 2\)/);
  });

  it("refuses a wrong confirmation by path and reason, and a new key made meanwhile is re-sealed too", async () => {
    const f = await fixture();
    const { node } = f;
    let s = await node.custody.start("rotate-root", undefined, "test");
    for (const i of [0, 1]) s = await node.custody.submit(await submission(f.files[i]!, f.team[i]!, s));
    const newFiles = s.shareFiles as TreeShareFile[];
    // bob's file confirmed under alice's path: refused, named.
    const forged = { ...(await confirmation(newFiles[1]!, f.team[1]!, s)), path: newFiles[0]!.path };
    await expect(node.custody.confirm(forged)).rejects.toThrow(/root\/custodian:alice refused/);
    // A current share sent as a confirmation: refused.
    await expect(node.custody.submit(await submission(f.files[2]!, f.team[2]!, s))).rejects.toThrow(
      /refused/,
    );
    await node.keys.create("late", null, { principal: "test" }, "software");
    const { handle } = await node.keys.usable("late");
    const late = await wrap(handle, "late", 1, f.dek, CTX);
    for (const file of newFiles)
      s = await node.custody.confirm(await confirmation(file, byId(f.team, file.custodian), s));
    expect(node.seal.rootGeneration).toBe(2);
    f.wrapped.push({ name: "late", version: 1, blob: late });
    await unwrapsAll(node, f);
    await node.seal.seal("test");
    await unwrapsAll(node, f).catch(() => {});
  });
});

describe("rekey", () => {
  it("moves to a new tree (a custodian added, threshold raised), same root key and generation", async () => {
    const f = await fixture();
    const { node } = f;
    const dave = people(["dave"])[0]!;
    const team = [...f.team, dave];
    const tree = { threshold: 3, of: team.map((p) => ({ custodian: p.id, publicKey: pub(p) })) };
    await expect(node.custody.start("rekey", undefined, "test")).rejects.toThrow(/needs the new tree/);
    await expect(node.custody.start("rekey", { threshold: 5, of: tree.of }, "test")).rejects.toThrow(
      /threshold 5/,
    );
    const withRepo = { threshold: 1, of: [tree, { repository: "vault-z" }] };
    await expect(node.custody.start("rekey", withRepo, "test")).rejects.toThrow(
      /no repositories or TPM configured/,
    );
    let s = await node.custody.start("rekey", tree, "test");
    await expect(node.custody.start("rekey", tree, "test")).rejects.toThrow(/in progress/);
    for (const i of [1, 2]) s = await node.custody.submit(await submission(f.files[i]!, f.team[i]!, s));
    const newFiles = s.shareFiles as TreeShareFile[];
    expect(newFiles.map((x) => x.custodian)).toEqual(["alice", "bob", "carol", "dave"]);
    for (const file of newFiles)
      s = await node.custody.confirm(await confirmation(file, byId(team, file.custodian), s));
    expect(node.seal.rootGeneration).toBe(1);
    expect(node.seal.config?.threshold).toBe(3);
    await unwrapsAll(node, f);
    await node.seal.seal("test");
    await expect(
      node.seal.submit(await submission(f.files[0]!, f.team[0]!, node.seal.status())),
    ).rejects.toThrow(/refused/);
    for (const file of newFiles.slice(1)) {
      await node.seal.submit(await submission(file, byId(team, file.custodian), node.seal.status()));
    }
    expect(node.seal.sealed).toBe(false);
    await unwrapsAll(node, f);
  });

  it("cancel and restart discard the pending tree; the old shares still unseal; the restart is audited", async () => {
    const f = await fixture();
    const { node } = f;
    const tree = {
      threshold: 2,
      of: f.team.slice(0, 2).map((p) => ({ custodian: p.id, publicKey: pub(p) })),
    };
    let s = await node.custody.start("rekey", tree, "test");
    s = await node.custody.cancel("test");
    expect(s.active).toBe(false);
    s = await node.custody.start("rotate-root", undefined, "test");
    for (const i of [0, 1]) s = await node.custody.submit(await submission(f.files[i]!, f.team[i]!, s));
    const newFiles = s.shareFiles as TreeShareFile[];
    s = await node.custody.confirm(await confirmation(newFiles[0]!, f.team[0]!, s));
    await node.close();
    const again = await open(f.dir);
    // A graceful close seals, which discards the change (a kill -9 leaves it to the next start: test/e2e/rekey-crash).
    const ended = [
      ...(await again.store.searchAudit({ operation: "sys.rekey.cancel" })),
      ...(await again.store.searchAudit({ operation: "sys.rekey.abandon" })),
    ].map((e) => e.event.reason);
    // Recorded as cancelled by the seal at close, or — if the store closed first — as abandoned at this start.
    expect(ended.some((r) => r?.startsWith(`rotate-root ${s.nonce}: `))).toBe(true);
    const tree1 = await submission(newFiles[0]!, f.team[0]!, again.seal.status());
    await expect(again.seal.submit(tree1)).rejects.toThrow(/refused/);
    for (const i of [1, 2])
      await again.seal.submit(await submission(f.files[i]!, f.team[i]!, again.seal.status()));
    expect(again.seal.sealed).toBe(false);
    expect(again.seal.rootGeneration).toBe(1);
    await unwrapsAll(again, f);
    // A second restart records nothing more.
    const abandons = (await again.store.searchAudit({ operation: "sys.rekey.abandon" })).length;
    await again.close();
    const third = await open(f.dir);
    expect(await third.store.searchAudit({ operation: "sys.rekey.abandon" })).toHaveLength(abandons);
  });
});

describe("store switch", () => {
  it("refuses a stale init id and, after a rotation, a record sealed under the old generation", async () => {
    const f = await fixture();
    const { node } = f;
    const config = node.seal.config!;
    const event = {
      principal: "t",
      operation: "sys.rekey.switch",
      decision: "allow" as const,
      time: new Date().toISOString(),
    };
    await expect(
      node.store.switchCustody({ fromInitId: "0".repeat(32), config, resealed: [] }, event),
    ).rejects.toThrow(/custody changed meanwhile/);
    const versions = await node.store.getKeyVersions("ehr");
    const oldBlob = versions[0]!.sealedMaterial;
    expect(sealedGeneration(oldBlob)).toBe(1);
    let s = await node.custody.start("rotate-root", undefined, "test");
    for (const i of [0, 1]) s = await node.custody.submit(await submission(f.files[i]!, f.team[i]!, s));
    for (const file of s.shareFiles as TreeShareFile[])
      s = await node.custody.confirm(await confirmation(file, byId(f.team, file.custodian), s));
    const stale = {
      name: "ehr",
      version: 2,
      state: "enabled" as const,
      sealedMaterial: oldBlob,
      createdAt: event.time,
    };
    await expect(
      node.store.addKeyVersion(stale, event.time, { ...event, operation: "keys.rotate" }),
    ).rejects.toThrow(/generation 1 but generation 2 is active/);
  });
});
