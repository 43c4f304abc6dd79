/**
 * Custody changes with what the node holds itself (docs/FORMATS.md §5.9):
 * a rekey to `1 of {2-of-3 custodians, 2-of-2 repositories}` writes the
 * repositories' new shares beside the old ones, reads them back, and after
 * the switch and a restart the node unseals from the repositories alone (a
 * cancelled rekey's repository shares are overwritten); and
 * a root rotation on a node whose TPM seal is active re-seals the new root
 * to the TPM at the switch, so the node restarts unsealed by the TPM seal
 * under root generation 2 with its tpm and software keys intact (swtpm).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { type CustosNode, type NodeOptions, openNode } from "../../src/api/server.js";
import { unwrap, wrap } from "../../src/crypto/envelope.js";
import type { ShareFile } from "../../src/custody/share-format.js";
import type { TreeShareFile } from "../../src/custody/tree-share-format.js";
import { DirectoryRepository } from "../../src/repository/directory.js";
import { type ShareRepository, shareKey } from "../../src/repository/share-repository.js";
import { confirmation, type Person, people, pub, submission } from "../helpers/custodians.js";
import { skipSwtpm, startSwtpm } from "../helpers/swtpm.js";

const CTX = { patient: "p-9" };
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup.length = 0;
});

async function open(dir: string, options: Partial<NodeOptions> = {}): Promise<CustosNode> {
  const node = await openNode({ dataDir: dir, log: pino({ level: "silent" }), ...options });
  cleanup.push(() => node.close().catch(() => {}));
  return node;
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Start, quorum of the first two current files, confirm every new custodian share; the node has switched. */
async function change(
  node: CustosNode,
  kind: "rekey" | "rotate-root",
  tree: unknown,
  files: (ShareFile | TreeShareFile)[],
  team: Person[],
) {
  let s = await node.custody.start(kind, tree, "test");
  for (const file of files.slice(0, 2)) {
    s = await node.custody.submit(await submission(file, team.find((p) => p.id === file.custodian)!, s));
  }
  const newFiles = s.shareFiles as TreeShareFile[];
  for (const file of newFiles) {
    s = await node.custody.confirm(await confirmation(file, team.find((p) => p.id === file.custodian)!, s));
  }
  expect(s.active).toBe(false);
  return newFiles;
}

describe("custody change with node-held leaves", () => {
  it("rekey to 1 of {2-of-3 custodians, 2-of-2 repositories}: repositories read back, and they alone unseal after a restart", async () => {
    const dir = tempDir("custos-change-repo-");
    const repos = new Map<string, ShareRepository>(
      ["vault-a", "vault-b"].map((r) => [r, new DirectoryRepository(join(dir, `repo-${r}`))]),
    );
    const repositories = { repositories: repos, timeoutMs: 3000, summary: {}, secrets: [] };
    const node = await open(join(dir, "data"), { repositories });
    const team = people(["alice", "bob", "carol"]);
    const init = await node.seal.init(
      2,
      team.map((p) => ({ id: p.id, publicKey: pub(p) })),
    );
    await node.keys.create("ehr", null, { principal: "t" }, "software");
    const { handle } = await node.keys.usable("ehr");
    const blob = await wrap(handle, "ehr", 1, new Uint8Array(32).fill(3), CTX);
    const tree = {
      threshold: 1,
      of: [
        { threshold: 2, of: team.map((p) => ({ custodian: p.id, publicKey: pub(p) })) },
        { threshold: 2, of: [{ repository: "vault-a" }, { repository: "vault-b" }] },
      ],
    };
    // A cancelled rekey leaves no usable share of the root in the repositories: they are overwritten.
    let s = await node.custody.start("rekey", tree, "test");
    for (const file of init.shareFiles.slice(1)) {
      s = await node.custody.submit(await submission(file, team.find((p) => p.id === file.custodian)!, s));
    }
    const key = shareKey(s.newInitId!, "root/2/repository:vault-a");
    const written = await repos.get("vault-a")!.get(key);
    expect(written).not.toBeNull();
    await node.custody.cancel("test");
    expect(Buffer.from((await repos.get("vault-a")!.get(key))!).equals(Buffer.from(written!))).toBe(false);
    const cancelled = await node.store.searchAudit({ operation: "sys.rekey.cancel" });
    expect(cancelled.at(-1)?.event.reason).toMatch(/new node-held shares were overwritten$/);

    const newFiles = await change(node, "rekey", tree, init.shareFiles, team);
    expect(newFiles).toHaveLength(3);
    const shares = await node.store.searchAudit({ operation: "sys.rekey.shares" });
    expect(shares.at(-1)?.event.reason).toContain(
      "read back and confirmed: root/2/repository:vault-a, root/2/repository:vault-b",
    );
    await node.close();

    const again = await open(join(dir, "data"), { repositories });
    expect(again.seal.sealed).toBe(false); // unattended, from the two repositories
    const k = await again.keys.usable("ehr");
    expect(await unwrap(k.handle, blob, CTX)).toEqual(new Uint8Array(32).fill(3));

    // A rekey that takes the repositories out overwrites their shares of the (same) root.
    const repoInit = again.seal.config!.initId;
    const oldKey = shareKey(repoInit, "root/2/repository:vault-b");
    const before = Buffer.from((await repos.get("vault-b")!.get(oldKey))!);
    const custodiansOnly = { threshold: 2, of: team.map((p) => ({ custodian: p.id, publicKey: pub(p) })) };
    await change(again, "rekey", custodiansOnly, newFiles, team);
    expect(Buffer.from((await repos.get("vault-b")!.get(oldKey))!).equals(before)).toBe(false);
    const cleanup = await again.store.searchAudit({ operation: "sys.rekey.cleanup" });
    expect(cleanup.at(-1)?.event.reason).toMatch(/old custody's node-held shares .* were overwritten$/);
  });

  it.skipIf(skipSwtpm)(
    "rotate-root with the TPM seal active re-seals the new root to the TPM; the restart opens it",
    async () => {
      const swtpm = await startSwtpm();
      cleanup.push(() => swtpm.destroy());
      const dir = tempDir("custos-change-tpm-");
      const node = await open(dir, { tpm: swtpm.address });
      const team = people(["alice", "bob", "carol"]);
      const init = await node.seal.init(
        2,
        team.map((p) => ({ id: p.id, publicKey: pub(p) })),
      );
      // The TPM seal takes the root key when it is next reconstructed: seal, unseal.
      node.tpm!.enable([7], "test");
      await node.seal.seal("test");
      for (const file of init.shareFiles.slice(0, 2)) {
        await node.seal.submit(
          await submission(file, team.find((p) => p.id === file.custodian)!, node.seal.status()),
        );
      }
      expect(node.tpm!.statusNow().state).toBe("active");
      const sealedBefore = readFileSync(join(dir, "tpm-seal.json"), "utf8");
      const dek = new Uint8Array(32).fill(5);
      const blobs: Record<string, Uint8Array> = {};
      for (const [name, protection] of [
        ["in-tpm", "tpm"],
        ["soft", "software"],
      ] as const) {
        await node.keys.create(name, null, { principal: "t" }, protection);
        blobs[name] = await wrap((await node.keys.usable(name)).handle, name, 1, dek, CTX);
      }

      await change(node, "rotate-root", undefined, init.shareFiles, team);
      expect(node.seal.rootGeneration).toBe(2);
      expect(readFileSync(join(dir, "tpm-seal.json"), "utf8")).not.toBe(sealedBefore);
      for (const name of Object.keys(blobs)) {
        expect(await unwrap((await node.keys.usable(name)).handle, blobs[name]!, CTX)).toEqual(dek);
      }
      await node.close();

      const again = await open(dir, { tpm: swtpm.address });
      expect(again.seal.sealed).toBe(false);
      expect(again.seal.rootGeneration).toBe(2);
      for (const name of Object.keys(blobs)) {
        expect(await unwrap((await again.keys.usable(name)).handle, blobs[name]!, CTX)).toEqual(dek);
      }
    },
    120_000,
  );
});
