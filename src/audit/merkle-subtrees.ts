/**
 * RFC 9162 tree heads, inclusion proofs (§2.1.3) and consistency proofs
 * (§2.1.4) from stored subtree hashes, in O(log n) reads: the request path's
 * answer to a log of 10⁸ events, where loading every leaf hash per proof
 * (merkle.ts's in-memory generators) costs gigabytes. The store keeps the hash
 * of every complete, aligned, power-of-two subtree — (level, index) covers
 * leaves [index·2^level, (index+1)·2^level), level 0 being the leaf hashes —
 * written as events are appended (src/store/sqlite-subtrees.ts).
 *
 * Every node that the RFC's recursion (split at the largest power of two
 * below n) visits starts at a multiple of a power of two at least its width,
 * so it is either one stored subtree or, on the right edge of the tree, the
 * right fold of the stored subtrees its width decomposes into (binary digits,
 * largest first). A proof names at most one right-edge node, so it needs at
 * most about 2·log₂ n stored hashes, read in one call. The generators here
 * follow merkle.ts's recursion step for step and are property-tested against
 * it (test/audit/merkle-subtrees.test.ts).
 */
import { type Hash, nodeHash, treeHead } from "./merkle.js";

/** A complete aligned subtree: leaves [index·2^level, (index+1)·2^level). */
export interface SubtreeRef {
  level: number;
  index: number;
}

/** Reads the hashes of the given subtrees, in the order asked (level 0: leaf hashes); throws if one is missing. */
export type SubtreeReader = (refs: readonly SubtreeRef[]) => Promise<Hash[]>;

/** At most this many subtrees in one read: 2·53 covers every safe-integer size. */
export const MAX_SUBTREE_READ = 128;

type Range = readonly [start: number, end: number];

function assertSize(value: number, what: string, max: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${what} must be an integer between 0 and ${max}, got ${value}`);
  }
}

/** The largest power of two strictly smaller than n (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The complete aligned subtrees covering leaves [start, end), left to right (largest first from an aligned start). */
export function perfectSubtrees(start: number, end: number): SubtreeRef[] {
  const out: SubtreeRef[] = [];
  let at = start;
  while (at < end) {
    let level = 0;
    let width = 1;
    while (at % (width * 2) === 0 && at + width * 2 <= end) {
      width *= 2;
      level++;
    }
    out.push({ level, index: at / width });
    at += width;
  }
  return out;
}

/** The ranges whose roots make PATH(index, D[0:size]), in proof order (RFC 9162 §2.1.3.1). */
function inclusionRanges(index: number, size: number): Range[] {
  const siblings: Range[] = [];
  let m = index;
  let start = 0;
  let end = size;
  while (end - start > 1) {
    const k = split(end - start);
    if (m < k) {
      siblings.push([start + k, end]);
      end = start + k;
    } else {
      siblings.push([start, start + k]);
      m -= k;
      start += k;
    }
  }
  // The recursion appends on its way back up: the deepest sibling comes first.
  return siblings.reverse();
}

/** The ranges whose roots make PROOF(first, D[0:second]), in proof order (RFC 9162 §2.1.4.1). */
function consistencyRanges(first: number, second: number): Range[] {
  if (first === 0 || first === second) return [];
  const siblings: Range[] = [];
  let m = first;
  let start = 0;
  let end = second;
  let whole = true;
  while (m !== end - start) {
    const k = split(end - start);
    if (m <= k) {
      siblings.push([start + k, end]);
      end = start + k;
    } else {
      siblings.push([start, start + k]);
      m -= k;
      start += k;
      whole = false;
    }
  }
  // SUBPROOF's last step gives the node itself unless it is the whole old tree; then the siblings, deepest first.
  const terminal: Range[] = whole ? [] : [[start, end]];
  return [...terminal, ...siblings.reverse()];
}

/** MTH of each range, from one read of the subtrees they decompose into. */
async function rangeRoots(read: SubtreeReader, ranges: readonly Range[], extra: SubtreeRef[] = []) {
  const parts = ranges.map(([s, e]) => perfectSubtrees(s, e));
  const refs = [...extra, ...parts.flat()];
  if (refs.length > MAX_SUBTREE_READ) throw new RangeError(`a proof needs ${refs.length} subtrees`);
  const hashes = refs.length === 0 ? [] : await read(refs);
  if (hashes.length !== refs.length) {
    throw new RangeError(`the store gave ${hashes.length} of ${refs.length} subtree hashes`);
  }
  let at = extra.length;
  const roots = parts.map((p) => {
    const hs = hashes.slice(at, at + p.length);
    at += p.length;
    let r = hs[hs.length - 1]!;
    for (let i = hs.length - 2; i >= 0; i--) r = nodeHash(hs[i]!, r);
    return r;
  });
  return { extra: hashes.slice(0, extra.length), roots };
}

/** MTH(D[0:size]) from stored subtrees. */
export async function treeHeadFrom(read: SubtreeReader, size: number): Promise<Hash> {
  assertSize(size, "size", Number.MAX_SAFE_INTEGER);
  if (size === 0) return treeHead([]);
  return (await rangeRoots(read, [[0, size]])).roots[0]!;
}

/** The leaf hash at `index` and PATH(index, D[0:size]), from stored subtrees. */
export async function inclusionProofFrom(
  read: SubtreeReader,
  index: number,
  size: number,
): Promise<{ leaf: Hash; proof: Hash[] }> {
  assertSize(size, "size", Number.MAX_SAFE_INTEGER);
  if (size < 1) throw new RangeError("an inclusion proof needs a tree of at least one leaf");
  assertSize(index, "index", size - 1);
  const { extra, roots } = await rangeRoots(read, inclusionRanges(index, size), [{ level: 0, index }]);
  return { leaf: extra[0]!, proof: roots };
}

/** PROOF(first, D[0:second]), from stored subtrees. */
export async function consistencyProofFrom(
  read: SubtreeReader,
  first: number,
  second: number,
): Promise<Hash[]> {
  assertSize(second, "second", Number.MAX_SAFE_INTEGER);
  assertSize(first, "first", second);
  return (await rangeRoots(read, consistencyRanges(first, second))).roots;
}
