/**
 * The cryptographic half of the init ceremony for a custody tree (the flat
 * k-of-N form stays in init-ceremony.ts, unchanged): check the tree, make
 * the root key, split it over the tree with a commitment per leaf, seal each
 * custodian's share to them in a `custos-share/v2` file, and hand back the
 * values of the node-held leaves (repositories, TPM) for the caller to store
 * before anything is committed. Nothing here is stored; everything secret
 * that is returned is the caller's to dispose of.
 */
import { b64u, hex, randomBytes } from "../crypto/bytes.js";
import { isUsableX25519PublicKey } from "../crypto/hpke.js";
import { SoftwareKeyHandle } from "../crypto/key-handle.js";
import { Secret } from "../crypto/secret.js";
import { keyCheckValue } from "../crypto/shamir.js";
import { CustosError } from "../errors.js";
import type { SealConfig } from "../store/store.js";
import type { NewCustody } from "./init-ceremony.js";
import { sealSystemSecrets } from "./init-ceremony.js";
import type { NodeShares } from "./node-shares.js";
import { checkTree, type GateRecord, isGate, type Leaf, leaves, type TreeInput } from "./tree.js";
import { sealTreeShareFile, type TreeShareFile } from "./tree-share-format.js";
import { splitOverTree } from "./tree-split.js";

export interface NewTreeCustody extends Omit<NewCustody, "shareFiles"> {
  shareFiles: TreeShareFile[];
  /** Node-held leaves (repositories, TPM) and their values, to be stored before the init is committed. */
  nodeLeaves: Leaf[];
  nodeValues: Map<string, Secret>;
}

/** The seal configuration's summary fields for a tree: its root gate, its custodian leaves. */
function configOf(tree: GateRecord, initId: string, kcv: Uint8Array): SealConfig {
  const custodians = leaves(tree)
    .filter((l) => l.kind === "custodian")
    .map((l) => ({ id: l.id, index: 0, publicKey: l.publicKey ?? "", commitment: l.commitment }));
  // index: the custodian's position in its own gate, 1-based (informational for trees).
  const position = new Map<string, number>();
  const walk = (g: GateRecord) =>
    g.of.forEach((child, i) => {
      if (isGate(child)) walk(child as GateRecord);
      else if ("custodian" in child) position.set(child.custodian, i + 1);
    });
  walk(tree);
  for (const c of custodians) c.index = position.get(c.id) ?? 0;
  return {
    initId,
    threshold: tree.threshold,
    shares: tree.of.length,
    custodians,
    kcv: b64u.encode(kcv),
    rootGeneration: 1,
    createdAt: new Date().toISOString(),
    tree,
  };
}

/**
 * `rootKey`: split this root key instead of making one (a rekey keeps the
 * root, custody-change.ts); the caller keeps and disposes of it.
 */
export async function makeTreeCustody(
  input: TreeInput,
  nodePublicKey: Uint8Array,
  rootKey?: Secret,
): Promise<NewTreeCustody> {
  checkTree(input);
  for (const leaf of leaves(input)) {
    if (leaf.kind !== "custodian") continue;
    const key = b64u.decode(leaf.publicKey ?? "", "publicKey");
    if (key.length !== 32 || !isUsableX25519PublicKey(key)) {
      throw new CustosError(400, "invalid_tree", `${leaf.path}: the public key is not a usable X25519 key`);
    }
  }
  const rk = rootKey ? Secret.of(rootKey.reveal().slice()) : Secret.random(32);
  const initIdBytes = randomBytes(16);
  const split = await splitOverTree(rk, input, initIdBytes);
  const root = new SoftwareKeyHandle(rk);
  const auditKey = Secret.random(32);
  const nodeValues = new Map<string, Secret>();
  try {
    const config = configOf(split.tree, hex.encode(initIdBytes), keyCheckValue(rk));
    const all = leaves(split.tree);
    const shareFiles: TreeShareFile[] = [];
    for (const leaf of all) {
      const value = split.values.get(leaf.path) as Secret;
      if (leaf.kind === "custodian") {
        shareFiles.push(
          await sealTreeShareFile({
            initId: initIdBytes,
            path: leaf.path,
            custodian: leaf.id,
            recipientPublicKey: b64u.decode(leaf.publicKey ?? "", "publicKey"),
            value,
            commitment: b64u.decode(leaf.commitment, "commitment"),
            nodePublicKey,
          }),
        );
      } else {
        nodeValues.set(leaf.path, Secret.of(value.reveal().slice()));
      }
    }
    const sealedSecrets = await sealSystemSecrets(root, auditKey);
    const nodeLeaves = all.filter((l) => l.kind !== "custodian");
    return {
      config,
      shareFiles,
      root,
      rootKey: Secret.of(rk.reveal().slice()),
      auditKey,
      sealedSecrets,
      nodeLeaves,
      nodeValues,
    };
  } catch (err) {
    root.dispose();
    auditKey.dispose();
    for (const v of nodeValues.values()) v.dispose();
    throw err;
  } finally {
    for (const v of split.values.values()) v.dispose();
  }
}

/**
 * Stores the node-held leaves' values (all must succeed, or nothing is
 * initialised) and disposes of them either way.
 */
export async function storeNodeShares(nodeShares: NodeShares | null, made: NewTreeCustody): Promise<void> {
  try {
    if (made.nodeLeaves.length === 0) return;
    const problems = nodeShares?.check(made.nodeLeaves) ?? [
      "this node has no repositories or TPM configured (custos server --repositories FILE, --tpm ADDRESS)",
    ];
    if (problems.length || nodeShares === null)
      throw new CustosError(400, "invalid_tree", problems.join("; "));
    await nodeShares
      .store(hex.decode(made.config.initId, "initId"), made.nodeLeaves, made.nodeValues)
      .catch((err: Error) => {
        throw new CustosError(503, "repository_unavailable", `${err.message}; nothing was initialised`);
      });
  } finally {
    for (const v of made.nodeValues.values()) v.dispose();
  }
}
