/**
 * The custody-tree half of a ceremony (an unseal, or a change's quorum):
 * checking one custodian's `custos-unseal/v4` submission against the tree
 * (kind, ceremony, path, duplicate, decryption, init id, commitment — each
 * refusal names the leaf's path), and
 * combining the accepted leaves into the root key, checked against the key
 * check value. The flat form's checks stay in seal.ts; the state machine that
 * calls both is there too.
 */
import { b64u, constantTimeEqual, hex } from "../crypto/bytes.js";
import { Secret } from "../crypto/secret.js";
import { KeyCheckError, keyCheckValue } from "../crypto/shamir.js";

import { CustosError } from "../errors.js";
import type { SealConfig } from "../store/store.js";
import type { Ceremony } from "./ceremony.js";
import { kindMismatchText } from "./ceremony-kind.js";
import { type Gathered, isNodeHeld, type LeafFailure, type NodeShares } from "./node-shares.js";
import type { ShareRefusal } from "./refusal.js";
import { describeMissing, type GateRecord, gateStatus, leaves } from "./tree.js";
import { openTreeUnsealSubmission, type TreeUnsealSubmission } from "./tree-share-format.js";
import { combineOverTree, verifyLeaf } from "./tree-split.js";

export type TreeCheck =
  | { ok: true; path: string; custodian: string; value: Secret }
  | { ok: false; path: string; custodian: string; reason: ShareRefusal; why?: string };

/** Checks a submission in the order of docs/FORMATS.md §5.7; never throws for a bad share. */
export async function checkTreeSubmission(
  config: SealConfig,
  tree: GateRecord,
  ceremony: Ceremony,
  sub: TreeUnsealSubmission,
): Promise<TreeCheck> {
  const leaf = leaves(tree).find((l) => l.path === sub.path && l.kind === "custodian");
  const custodian = leaf?.id ?? sub.path.slice(sub.path.lastIndexOf(":") + 1);
  const refuse = (reason: ShareRefusal): TreeCheck => ({ ok: false, path: sub.path, custodian, reason });
  if (sub.ceremony !== ceremony.kind) {
    const why = kindMismatchText(sub.ceremony, ceremony.kind);
    return { ok: false, path: sub.path, custodian, reason: "wrong_kind", why };
  }
  if (sub.nonce !== hex.encode(ceremony.nonce)) return refuse("wrong_ceremony");
  if (!leaf) return refuse("unknown_path");
  if (ceremony.accepted.has(leaf.path)) return refuse("duplicate_custodian");
  let value: Secret;
  try {
    const payload = await openTreeUnsealSubmission(sub, ceremony.privateKey, ceremony.nonce, ceremony.kind);
    if (hex.encode(payload.initId) !== config.initId) {
      payload.value.dispose();
      return refuse("wrong_init");
    }
    value = payload.value;
  } catch {
    return refuse("undecryptable");
  }
  const initId = hex.decode(config.initId, "initId");
  if (!verifyLeaf(initId, leaf.path, value.reveal(), b64u.decode(leaf.commitment, "commitment"))) {
    value.dispose();
    return refuse("commitment_mismatch");
  }
  return { ok: true, path: leaf.path, custodian, value };
}

/** True when the leaves at `paths` satisfy the root gate. */
export function treeSatisfied(tree: GateRecord, paths: Iterable<string>): boolean {
  return gateStatus(tree, new Set(paths)).satisfied;
}

/** The root key from the accepted leaves; KeyCheckError when it is not the one the KCV names. */
export async function combineTree(
  config: SealConfig,
  tree: GateRecord,
  accepted: ReadonlyMap<string, Secret>,
): Promise<Secret> {
  const bytes = await combineOverTree(tree, accepted);
  if (bytes === null) throw new KeyCheckError();
  const rk = Secret.of(bytes);
  if (!constantTimeEqual(keyCheckValue(rk), b64u.decode(config.kcv, "kcv"))) {
    rk.dispose();
    throw new KeyCheckError();
  }
  return rk;
}

export interface NodeRead {
  satisfied: boolean;
  failures: LeafFailure[];
  /** For the audit event: the leaves that gave good shares and those that failed, with why. */
  reason: string;
  /** When not satisfied: every gate still short and every leaf that failed. */
  shortfall: string;
}

/**
 * Reads the node-held leaves not yet among `accepted` (node-shares.ts),
 * touching no ceremony state: the caller adds the values under its lock
 * (`applyNodeShares`), so the read itself — as slow as the slowest
 * repository — holds nothing up. `accepted` is read live, so the read stops
 * as soon as it and the shares accepted meanwhile satisfy the tree. Throws
 * 409 for a custody without such leaves, 503 for a node without
 * repositories configured.
 */
export async function gatherNodeShares(
  config: SealConfig,
  nodeShares: NodeShares | null,
  accepted: ReadonlyMap<string, Secret>,
): Promise<Gathered> {
  const tree = config.tree;
  const held = tree ? leaves(tree).filter(isNodeHeld) : [];
  if (!tree || held.length === 0) {
    throw new CustosError(
      409,
      "no_node_shares",
      "this node's custody has no repository or tpm leaf; custodians must unseal it",
    );
  }
  if (nodeShares === null) {
    throw new CustosError(
      503,
      "repositories_unavailable",
      "this node has no repositories configured (custos server --repositories FILE)",
    );
  }
  const missing = held.filter((l) => !accepted.has(l.path));
  return nodeShares.gather(config.initId, missing, (paths) =>
    treeSatisfied(tree, [...accepted.keys(), ...paths]),
  );
}

/** Adds gathered shares to the ceremony (one for a leaf already there is disposed of) and says where the tree stands. */
export function applyNodeShares(tree: GateRecord, ceremony: Ceremony, gathered: Gathered): NodeRead {
  const { values, failures } = gathered;
  for (const [path, value] of values) {
    if (ceremony.accepted.has(path)) value.dispose();
    else ceremony.accepted.set(path, value);
  }
  const named = failures.map((f) => `${f.path}: ${f.reason}`);
  const failed = named.length ? `failed: ${named.join("; ")}` : "";
  const short = describeMissing(gateStatus(tree, new Set(ceremony.accepted.keys())));
  return {
    satisfied: short.length === 0,
    failures,
    reason: `good shares from ${[...values.keys()].join(", ") || "none"}${failed ? `; ${failed}` : ""}`,
    shortfall: `cannot unseal from repositories: ${short.join("; ")}; ${failed || "no leaf failed, but custodians are needed"}`,
  };
}
