/**
 * The new custody of a rekey or a root rotation (docs/FORMATS.md §5.9), from
 * the root key the current quorum gave back: split over the new tree under a
 * new init id with the existing tree split (a rekey splits the same root
 * key, a rotation a fresh one), custodians' shares sealed to them in
 * `custos-share/v2` files, and the node-held leaves (repositories, TPM)
 * stored under the new init id — beside, never over, the old ones, which are
 * keyed by the old init id — then read back and checked against their
 * commitments. A leaf that cannot be stored or read back stops the change:
 * the old custody is untouched.
 */
import { b64u, hex } from "../crypto/bytes.js";
import { Secret } from "../crypto/secret.js";
import { CustosError } from "../errors.js";
import type { SealConfig } from "../store/store.js";
import type { NodeShares } from "./node-shares.js";
import {
  type GateRecord,
  isGate,
  type Leaf,
  leaves,
  type NodeInput,
  type NodeRecord,
  type TreeInput,
} from "./tree.js";
import { makeTreeCustody, storeNodeShares } from "./tree-custody.js";
import type { TreeShareFile } from "./tree-share-format.js";

export interface NewCustodyShares {
  config: SealConfig;
  shareFiles: TreeShareFile[];
  /** Leaves confirmed by being read back (repositories, TPM). */
  nodeConfirmed: string[];
  /** The node-held leaves written under the new init id (to be voided if the change does not happen). */
  nodeLeaves: Leaf[];
  /** The new root key for a rotation (the caller's to dispose of); null for a rekey. */
  newRootKey: Secret | null;
}

/** The tree without its commitments: the input a rotation re-splits when no new tree is given. */
export function treeInputOf(tree: GateRecord): TreeInput {
  const strip = (node: NodeRecord): NodeInput => {
    if (isGate(node)) {
      const g = node as GateRecord;
      return { threshold: g.threshold, of: g.of.map(strip), ...(g.name ? { name: g.name } : {}) };
    }
    const { commitment: _, ...leaf } = node as NodeRecord & { commitment: string };
    return leaf as NodeInput;
  };
  return strip(tree) as TreeInput;
}

/**
 * Splits `rootKey` (rekey) or a new root key (rotation) over `tree`, stores
 * and verifies the node-held leaves. `rootKey` stays the caller's.
 */
export async function makeChangeShares(
  kind: "rekey" | "rotate-root",
  current: SealConfig,
  tree: TreeInput,
  rootKey: Secret,
  nodePublicKey: Uint8Array,
  nodeShares: NodeShares | null,
): Promise<NewCustodyShares> {
  const made = await makeTreeCustody(tree, nodePublicKey, kind === "rekey" ? rootKey : undefined);
  made.root.dispose();
  made.auditKey.dispose();
  const config: SealConfig = {
    ...made.config,
    rootGeneration: kind === "rekey" ? current.rootGeneration : current.rootGeneration + 1,
  };
  let newRootKey: Secret | null = made.rootKey;
  try {
    if (kind === "rekey") {
      made.rootKey.dispose();
      newRootKey = null;
      if (config.kcv !== current.kcv) throw new Error("rekey split a different root key");
    }
    const nodeLeaves = made.nodeLeaves;
    try {
      await storeNodeShares(nodeShares, made);
      const nodeConfirmed = await readBack(nodeShares, config.initId, nodeLeaves);
      return { config, shareFiles: made.shareFiles, nodeConfirmed, nodeLeaves, newRootKey };
    } catch (err) {
      await voidNodeShares(nodeShares, config.initId, nodeLeaves);
      throw err;
    }
  } catch (err) {
    newRootKey?.dispose();
    throw err;
  }
}

/**
 * Overwrites the node-held leaves' shares of a change that will not happen
 * with random values (repositories have no delete): a rekey's are shares of
 * the current root key, and must not outlive the change that made them.
 * Best effort; answers what could not be overwritten, "" when all were.
 */
export async function voidNodeShares(
  nodeShares: NodeShares | null,
  initId: string,
  nodeLeaves: Leaf[],
): Promise<string> {
  if (nodeShares === null || nodeLeaves.length === 0) return "";
  const noise = new Map(nodeLeaves.map((l) => [l.path, Secret.random(33)]));
  try {
    await nodeShares.store(hex.decode(initId, "initId"), nodeLeaves, noise);
    return "";
  } catch (err) {
    return (err as Error).message;
  } finally {
    for (const v of noise.values()) v.dispose();
  }
}

/** Reads every node-held leaf back under the new init id; all must match their commitments. */
async function readBack(
  nodeShares: NodeShares | null,
  initId: string,
  nodeLeaves: Leaf[],
): Promise<string[]> {
  if (nodeLeaves.length === 0 || nodeShares === null) return [];
  const { values, failures } = await nodeShares.gather(initId, nodeLeaves, () => false);
  for (const v of values.values()) v.dispose();
  if (failures.length > 0) {
    throw new CustosError(
      503,
      "repository_unavailable",
      `the new shares could not be read back: ${failures.map((f) => `${f.path}: ${f.reason}`).join("; ")}; the change was abandoned, the current custody stays`,
      { failed: failures.map((f) => f.path) },
    );
  }
  return nodeLeaves.map((l) => l.path);
}

/** The custodian leaves of a new tree that must confirm, by path. */
export function custodianLeaves(config: SealConfig): Leaf[] {
  return config.tree ? leaves(config.tree).filter((l) => l.kind === "custodian") : [];
}

/** The commitment of `path` in the new tree, decoded; null when no custodian leaf has that path. */
export function commitmentAt(config: SealConfig, path: string): Uint8Array | null {
  const leaf = custodianLeaves(config).find((l) => l.path === path);
  return leaf ? b64u.decode(leaf.commitment, "commitment") : null;
}

export function initIdBytes(config: SealConfig): Uint8Array {
  return hex.decode(config.initId, "initId");
}
