/**
 * The custody tree (docs/FORMATS.md §5.5): nested threshold gates over leaves
 * that hold one share each — a custodian (a person's HPKE key), a repository
 * (a storage place, by name) or this node's TPM. This module is the shape
 * only: the zod schema an init request or a stored configuration must pass,
 * the paths that name every node (`root/1/custodian:alice`), the conversion of
 * the older flat k-of-N configuration into a one-gate tree, and the question
 * "which gates are satisfied by these leaves, and what is still missing",
 * which both the unseal and `seal-status` ask. The split and the combine live
 * in tree-split.ts; nothing here touches a secret.
 *
 * Paths are positional for gates and named for leaves, so a leaf's path says
 * where it sits and who holds it, and a rekey that produces a new tree gives
 * new paths under a new init id without any renaming of the old ones.
 */
import { z } from "zod";
import { CustosError } from "../errors.js";
import type { SealConfig } from "../store/store.js";
import { resettablePcrProblem } from "../tpm/resettable-pcrs.js";
import { CUSTODIAN_ID_RE } from "./custodian-key.js";

export const MAX_TREE_DEPTH = 6;
export const MAX_GATE_CHILDREN = 32;
export const MAX_TREE_LEAVES = 128;
export const ROOT_PATH = "root";
/** Repository names and TPM node names follow the custodian id rule. */
export const LEAF_NAME_RE = CUSTODIAN_ID_RE;
/** A leaf or gate path as docs/FORMATS.md §5.5 defines it. */
export const PATH_RE = /^root(\/[1-9][0-9]?)*(\/(custodian|repository|tpm):[a-z0-9][a-z0-9._-]{0,63})?$/;

const B64U_KEY = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be 32 bytes of base64url");
const COMMITMENT = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be a 32-byte commitment in base64url");
const Name = z.string().regex(LEAF_NAME_RE, `must match ${LEAF_NAME_RE.source}`);

/** A tree as an operator writes it (YAML, or JSON in the init request): no commitments yet. */
export type TreeInput = GateInput;
export interface GateInput {
  threshold: number;
  of: NodeInput[];
  /** A label for people (for example a hospital); paths stay positional. */
  name?: string | undefined;
}
export type LeafInput =
  | { custodian: string; publicKey: string }
  | { repository: string }
  | { tpm: string; pcrs?: number[] | undefined };
export type NodeInput = GateInput | LeafInput;

/** The same tree as stored in the seal configuration: every leaf has its commitment. */
export interface GateRecord {
  threshold: number;
  of: NodeRecord[];
  name?: string | undefined;
}
export type LeafRecord =
  | { custodian: string; publicKey: string; commitment: string }
  | { repository: string; commitment: string }
  | { tpm: string; pcrs?: number[] | undefined; commitment: string };
export type NodeRecord = GateRecord | LeafRecord;

export type LeafKind = "custodian" | "repository" | "tpm";

/** A leaf with its place in the tree. */
export interface Leaf {
  path: string;
  kind: LeafKind;
  /** Custodian id, repository name or TPM node name. */
  id: string;
  /** Share commitment, b64u (docs/FORMATS.md §5.5); "" while the tree is still an input. */
  commitment: string;
  /** Custodian's X25519 public key, b64u. */
  publicKey?: string;
  pcrs?: number[];
}

const PcrsSchema = z.array(z.number().int().min(0).max(23)).min(1).max(24).optional();

/**
 * Built level by level, deepest first, rather than recursively (z.lazy): a
 * gate may hold gates only down to MAX_TREE_DEPTH, so an input nested deeper
 * fails there instead of being walked to its end — anonymous callers sent
 * trees 2,500 deep, which overflowed the stack of a recursive schema.
 */
function nodeSchema(withCommitments: boolean): z.ZodType<GateInput | GateRecord> {
  const c = withCommitments ? { commitment: COMMITMENT } : {};
  const leaf = [
    z.strictObject({ custodian: Name, publicKey: B64U_KEY, ...c }),
    z.strictObject({ repository: Name, ...c }),
    z.strictObject({ tpm: Name, pcrs: PcrsSchema, ...c }),
  ] as const;
  let member: z.ZodType = z.union(leaf);
  let gate: z.ZodType = z.never();
  for (let depth = MAX_TREE_DEPTH; depth >= 1; depth--) {
    gate = z.strictObject({
      threshold: z.number().int().min(1).max(MAX_GATE_CHILDREN),
      of: z.array(member).min(1).max(MAX_GATE_CHILDREN),
      name: z.string().min(1).max(64).optional(),
    });
    member = z.union([gate, ...leaf]);
  }
  return gate as z.ZodType<GateInput | GateRecord>;
}

/** The tree of an init request (zod: shape, names, sizes; `checkTree` does the rest). */
export const TreeInputSchema = nodeSchema(false) as z.ZodType<TreeInput>;
/** The tree as stored in the seal configuration. */
export const TreeRecordSchema = nodeSchema(true) as z.ZodType<GateRecord>;

export function isGate(node: NodeInput | NodeRecord): node is GateInput {
  return "threshold" in node;
}

function leafOf(node: LeafInput | LeafRecord, parent: string): Leaf {
  const commitment = "commitment" in node ? node.commitment : "";
  if ("custodian" in node) {
    const path = `${parent}/custodian:${node.custodian}`;
    return { path, kind: "custodian", id: node.custodian, commitment, publicKey: node.publicKey };
  }
  if ("repository" in node) {
    return {
      path: `${parent}/repository:${node.repository}`,
      kind: "repository",
      id: node.repository,
      commitment,
    };
  }
  const leaf: Leaf = { path: `${parent}/tpm:${node.tpm}`, kind: "tpm", id: node.tpm, commitment };
  if (node.pcrs) leaf.pcrs = node.pcrs;
  return leaf;
}

/** Path of child `i` (0-based) of the gate at `parent`. */
export function childPath(parent: string, child: NodeInput | NodeRecord, i: number): string {
  return isGate(child) ? `${parent}/${i + 1}` : leafOf(child, parent).path;
}

/** Every leaf, depth first, in the order of the tree. */
export function leaves(tree: GateInput | GateRecord, path = ROOT_PATH): Leaf[] {
  return tree.of.flatMap((child, i) =>
    isGate(child) ? leaves(child, childPath(path, child, i)) : [leafOf(child, path)],
  );
}

/**
 * What zod cannot say: depth, the threshold within each gate, one place per
 * custodian, repository and TPM in the whole tree, one key per custodian, no
 * software-resettable PCR on a tpm leaf (the TPM seal's rule, tpm/resettable-pcrs.ts).
 * Throws a 400 naming the gate or leaf at fault.
 */
export function checkTree(tree: GateInput | GateRecord): void {
  const bad = (message: string): never => {
    throw new CustosError(400, "invalid_tree", message);
  };
  const walk = (gate: GateInput | GateRecord, path: string, depth: number): void => {
    if (depth > MAX_TREE_DEPTH) bad(`gate ${path} is nested deeper than ${MAX_TREE_DEPTH} levels`);
    if (gate.threshold > gate.of.length) {
      bad(`gate ${path} has threshold ${gate.threshold} but only ${gate.of.length} member(s)`);
    }
    gate.of.forEach((child, i) => {
      if (isGate(child)) walk(child, childPath(path, child, i), depth + 1);
    });
  };
  walk(tree, ROOT_PATH, 1);
  const all = leaves(tree);
  if (all.length > MAX_TREE_LEAVES) bad(`the tree has ${all.length} leaves; at most ${MAX_TREE_LEAVES}`);
  if (all.length < 2 && tree.threshold < 2) {
    // One leaf holding the whole root key is not custody.
    bad("the tree must need at least two shares or offer at least two holders");
  }
  const seen = new Map<string, string>();
  const keys = new Map<string, string>();
  for (const leaf of all) {
    const label = `${leaf.kind}:${leaf.id}`;
    const earlier = seen.get(label);
    if (earlier) bad(`${label} appears twice (${earlier} and ${leaf.path}); each holder has one place`);
    seen.set(label, leaf.path);
    const resettable = leaf.pcrs ? resettablePcrProblem(leaf.pcrs) : null;
    if (resettable) bad(`${leaf.path}: ${resettable}`);
    if (leaf.publicKey) {
      const other = keys.get(leaf.publicKey);
      if (other) bad(`${leaf.path} has the same public key as ${other}`);
      keys.set(leaf.publicKey, leaf.path);
    }
  }
  if (all.filter((l) => l.kind === "tpm").length > 1)
    bad("a tree has at most one tpm leaf (this node's TPM)");
}

/** The stored tree, or the flat k-of-N configuration read as one gate of custodians. */
export function treeOf(config: SealConfig): GateRecord {
  if (config.tree) return config.tree;
  return {
    threshold: config.threshold,
    of: [...config.custodians]
      .sort((a, b) => a.index - b.index)
      .map((c) => ({ custodian: c.id, publicKey: c.publicKey, commitment: c.commitment })),
  };
}

/** The seal-status view of one gate: which members count, and how many more it needs. */
export interface GateStatus {
  path: string;
  name?: string;
  threshold: number;
  satisfied: boolean;
  /** Members that count (leaves present, gates satisfied). */
  have: number;
  /** threshold − have, or 0. */
  missing: number;
  of: (GateStatus | LeafStatus)[];
}

export interface LeafStatus {
  path: string;
  kind: LeafKind;
  id: string;
  present: boolean;
}

/** The tree with, at each gate, what `present` (a set of leaf paths) satisfies and what is missing. */
export function gateStatus(
  tree: GateInput | GateRecord,
  present: ReadonlySet<string>,
  path = ROOT_PATH,
): GateStatus {
  const of = tree.of.map((child, i): GateStatus | LeafStatus => {
    if (isGate(child)) return gateStatus(child, present, childPath(path, child, i));
    const leaf = leafOf(child, path);
    return { path: leaf.path, kind: leaf.kind, id: leaf.id, present: present.has(leaf.path) };
  });
  const have = of.filter((m) => ("present" in m ? m.present : m.satisfied)).length;
  const status: GateStatus = {
    path,
    threshold: tree.threshold,
    satisfied: have >= tree.threshold,
    have,
    missing: Math.max(0, tree.threshold - have),
    of,
  };
  if (tree.name) status.name = tree.name;
  return status;
}

/** One line per unsatisfied gate: "root/2 (hospital-b) needs 1 more of 2". */
export function describeMissing(status: GateStatus): string[] {
  if (status.satisfied) return [];
  const label = status.name ? `${status.path} (${status.name})` : status.path;
  const own = `${label} needs ${status.missing} more of ${status.threshold}`;
  return [own, ...status.of.flatMap((m) => ("of" in m ? describeMissing(m) : []))];
}
