/**
 * The Merkle tree of RFC 9162 §2.1 over audit events: leaf hash
 * SHA-256(0x00 ‖ entry), node hash SHA-256(0x01 ‖ left ‖ right), the tree
 * head MTH, inclusion proofs (PATH, §2.1.3) and consistency proofs (PROOF,
 * §2.1.4), and their verification algorithms (§2.1.3.2, §2.1.4.2). The
 * generators work on an array of leaf hashes and the definition's
 * recursion, split at the largest power of two below n, so they read as the
 * RFC does; subtree roots are memoised per call, which keeps a proof at
 * O(n) hashing. Verification never trusts the prover's sizes: every index
 * and size is checked before use, and a proof of the wrong length fails.
 * This module is the log's foundation for signed tree heads and witnesses
 * (the audit issue); the hash chain (chain.ts) remains the store's record.
 * The node itself serves proofs from stored subtree hashes in O(log n) reads
 * (merkle-subtrees.ts); the generators here, over an array of leaves, are the
 * reference those are property-tested against, and serve offline tools.
 */
import { createHash } from "node:crypto";

export type Hash = Uint8Array;

const LEAF_PREFIX = new Uint8Array([0x00]);
const NODE_PREFIX = new Uint8Array([0x01]);

function sha256(...parts: Uint8Array[]): Hash {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  const d = h.digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** SHA-256(0x00 ‖ entry). */
export function leafHash(entry: Uint8Array): Hash {
  return sha256(LEAF_PREFIX, entry);
}

/** SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Hash, right: Hash): Hash {
  return sha256(NODE_PREFIX, left, right);
}

/** The largest power of two strictly smaller than n (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function assertSize(value: number, what: string, max: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${what} must be an integer between 0 and ${max}, got ${value}`);
  }
}

/** Memoised subtree roots over a fixed array of leaf hashes. */
class Subtrees {
  #memo = new Map<string, Hash>();
  constructor(private readonly leaves: readonly Hash[]) {}

  /** MTH(D[start:end]). */
  root(start: number, end: number): Hash {
    const n = end - start;
    if (n === 0) return sha256();
    if (n === 1) return this.leaves[start]!;
    const key = `${start}:${end}`;
    const cached = this.#memo.get(key);
    if (cached) return cached;
    const k = split(n);
    const out = nodeHash(this.root(start, start + k), this.root(start + k, end));
    this.#memo.set(key, out);
    return out;
  }
}

/** MTH of the first `size` leaves (all of them by default). */
export function treeHead(leaves: readonly Hash[], size = leaves.length): Hash {
  assertSize(size, "size", leaves.length);
  return new Subtrees(leaves).root(0, size);
}

/** PATH(m, D[0:size]): the audit path of leaf `index` in the tree of the first `size` leaves. */
export function inclusionProof(leaves: readonly Hash[], index: number, size: number): Hash[] {
  assertSize(size, "size", leaves.length);
  if (size < 1) throw new RangeError("an inclusion proof needs a tree of at least one leaf");
  assertSize(index, "index", size - 1);
  const trees = new Subtrees(leaves);
  const path = (m: number, start: number, end: number): Hash[] => {
    const n = end - start;
    if (n === 1) return [];
    const k = split(n);
    return m < k
      ? [...path(m, start, start + k), trees.root(start + k, end)]
      : [...path(m - k, start + k, end), trees.root(start, start + k)];
  };
  return path(index, 0, size);
}

/** PROOF(first, D[0:second]): proves the tree of `first` leaves is a prefix of the tree of `second`. */
export function consistencyProof(leaves: readonly Hash[], first: number, second: number): Hash[] {
  assertSize(second, "second", leaves.length);
  assertSize(first, "first", second);
  if (first === 0 || first === second) return [];
  const trees = new Subtrees(leaves);
  const subproof = (m: number, start: number, end: number, whole: boolean): Hash[] => {
    const n = end - start;
    if (m === n) return whole ? [] : [trees.root(start, end)];
    const k = split(n);
    return m <= k
      ? [...subproof(m, start, start + k, whole), trees.root(start + k, end)]
      : [...subproof(m - k, start + k, end, false), trees.root(start, start + k)];
  };
  return subproof(first, 0, second, true);
}

function equal(a: Hash, b: Hash): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** RFC 9162 §2.1.3.2: does `proof` show `leaf` at `index` in the tree of `size` leaves with head `root`? */
export function verifyInclusion(
  leaf: Hash,
  index: number,
  size: number,
  proof: readonly Hash[],
  root: Hash,
): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

/** RFC 9162 §2.1.4.2: does `proof` show the tree (`first`, `firstRoot`) is a prefix of (`second`, `secondRoot`)? */
export function verifyConsistency(
  first: number,
  second: number,
  proof: readonly Hash[],
  firstRoot: Hash,
  secondRoot: Hash,
): boolean {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 0 || first > second)
    return false;
  if (first === second) return proof.length === 0 && equal(firstRoot, secondRoot);
  if (first === 0) return proof.length === 0;
  // Step 1: between two different non-empty trees the proof is never empty.
  if (proof.length === 0) return false;
  const path = (first & (first - 1)) === 0 ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(fr, firstRoot) && equal(sr, secondRoot);
}
