/**
 * Splitting the root key over a custody tree and putting it back together
 * (docs/FORMATS.md §5.5). Each gate splits the secret of its slot with Shamir
 * over GF(256) (`shamir-secret-sharing`): a member of a t-of-n gate (t ≥ 2)
 * gets one share, which is one byte longer than the gate's secret (the
 * x-coordinate); a nested gate splits that share again. A 1-of-n gate gives
 * every member the gate's secret itself (Shamir with t = 1 is replication).
 * So a leaf's value is 32 + (number of t ≥ 2 gates above it) bytes.
 *
 * Every leaf value gets a commitment bound to the init id and the leaf's path,
 * so a wrong share is named by its path before it is combined, and the root
 * that comes out is checked against the key check value. The library's
 * GF(256) arithmetic is not constant time (crypto/shamir.ts says why that is
 * tolerable); intermediate gate secrets are wiped as soon as they are used.
 */
import { createHash } from "node:crypto";
import { combine, split } from "shamir-secret-sharing";
import { abytes, constantTimeEqual, u8, utf8, zero } from "../crypto/bytes.js";
import { Secret } from "../crypto/secret.js";
import { INIT_ID_BYTES, ROOT_KEY_BYTES } from "../crypto/shamir.js";
import {
  childPath,
  type GateInput,
  type GateRecord,
  isGate,
  type LeafInput,
  type NodeRecord,
  ROOT_PATH,
} from "./tree.js";

const COMMIT_LABEL = utf8("custos/tree-share-commit/v1");
/** The longest leaf value: the root key plus one byte per gate level. */
export const MAX_LEAF_VALUE_BYTES = 64;

/** c = H("custos/tree-share-commit/v1" ‖ initId(16) ‖ u8(len path) ‖ path ‖ u8(len v) ‖ v) */
export function commitLeaf(initId: Uint8Array, path: string, value: Uint8Array): Uint8Array {
  abytes(initId, "initId", INIT_ID_BYTES);
  abytes(value, "value");
  const p = utf8(path, "path");
  if (p.length > 255) throw new RangeError("path must be at most 255 bytes");
  if (value.length > MAX_LEAF_VALUE_BYTES)
    throw new RangeError(`value must be at most ${MAX_LEAF_VALUE_BYTES} bytes`);
  const digest = createHash("sha256")
    .update(COMMIT_LABEL)
    .update(initId)
    .update(u8(p.length))
    .update(p)
    .update(u8(value.length))
    .update(value)
    .digest();
  return Uint8Array.from(digest);
}

/** True when `value` is the share committed to at `path`; constant time in the value. */
export function verifyLeaf(
  initId: Uint8Array,
  path: string,
  value: Uint8Array,
  commitment: Uint8Array,
): boolean {
  if (value.length === 0 || value.length > MAX_LEAF_VALUE_BYTES || commitment.length !== 32) return false;
  return constantTimeEqual(commitLeaf(initId, path, value), commitment);
}

/** A plain Uint8Array copy (the library refuses Buffers and other subclasses). */
function plain(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  return out;
}

export interface TreeSplit {
  /** The tree with every leaf's commitment (b64u) filled in. */
  tree: GateRecord;
  /** Each leaf's value by path; the caller hands them out and disposes of them. */
  values: Map<string, Secret>;
}

/** Splits `secret` (the 32-byte root key) over `tree`; checks that the whole tree gives it back. */
export async function splitOverTree(secret: Secret, tree: GateInput, initId: Uint8Array): Promise<TreeSplit> {
  if (secret.length !== ROOT_KEY_BYTES) throw new RangeError(`secret must be ${ROOT_KEY_BYTES} bytes`);
  abytes(initId, "initId", INIT_ID_BYTES);
  const values = new Map<string, Secret>();
  const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64url");

  const splitGate = async (gate: GateInput, slot: Uint8Array, path: string): Promise<GateRecord> => {
    const n = gate.of.length;
    const input = plain(slot);
    let parts: Uint8Array[];
    try {
      parts = gate.threshold === 1 ? gate.of.map(() => plain(slot)) : await split(input, n, gate.threshold);
    } finally {
      zero(input);
    }
    const of: NodeRecord[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const child = gate.of[i]!;
        const part = parts[i]!;
        const here = childPath(path, child, i);
        if (isGate(child)) {
          of.push(await splitGate(child, part, here));
        } else {
          const commitment = b64(commitLeaf(initId, here, part));
          values.set(here, Secret.of(plain(part)));
          of.push({ ...(child as LeafInput), commitment } as NodeRecord);
        }
      }
    } finally {
      zero(...parts);
    }
    const record: GateRecord = { threshold: gate.threshold, of };
    if (gate.name) record.name = gate.name;
    return record;
  };

  const rk = plain(secret.reveal());
  let check: Uint8Array | null = null;
  try {
    const record = await splitGate(tree, rk, ROOT_PATH);
    check = await combineOverTree(record, values);
    if (check === null || !constantTimeEqual(check, rk)) {
      for (const v of values.values()) v.dispose();
      throw new Error("custody tree split self-check failed: the shares do not reconstruct the key");
    }
    return { tree: record, values };
  } finally {
    zero(rk, check);
  }
}

/**
 * The root secret from the leaf values present (by path), or null when some
 * gate on the way lacks members. Values must already have passed their
 * commitments; any `threshold` members of a gate are used.
 */
export async function combineOverTree(
  tree: GateRecord,
  values: ReadonlyMap<string, Secret>,
  path = ROOT_PATH,
): Promise<Uint8Array | null> {
  const got: Uint8Array[] = [];
  try {
    for (let i = 0; i < tree.of.length && got.length < tree.threshold; i++) {
      const child = tree.of[i]!;
      const here = childPath(path, child, i);
      if (isGate(child)) {
        const inner = await combineOverTree(child as GateRecord, values, here);
        if (inner !== null) got.push(inner);
      } else {
        const v = values.get(here);
        if (v !== undefined) got.push(plain(v.reveal()));
      }
    }
    if (got.length < tree.threshold) return null;
    if (tree.threshold === 1) return plain(got[0]!);
    return await combine(got.slice(0, tree.threshold));
  } finally {
    zero(...got);
  }
}
