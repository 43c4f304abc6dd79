/**
 * Proofs from stored subtree hashes (src/audit/merkle-subtrees.ts) against
 * merkle.ts's in-memory generators, which the RFC 9162 vectors check
 * (merkle.rfc9162.test.ts): exhaustively for every size up to 40, and as a
 * fast-check property for random sizes up to 3,000 and random indices, the
 * roots, inclusion proofs and consistency proofs must be identical, and each
 * must be built from at most about 2·log₂ n stored hashes read in one call.
 * The reader here serves subtree hashes computed from an array of leaves.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { consistencyProof, inclusionProof, leafHash, treeHead } from "../../src/audit/merkle.js";
import {
  consistencyProofFrom,
  inclusionProofFrom,
  perfectSubtrees,
  type SubtreeReader,
  type SubtreeRef,
  treeHeadFrom,
} from "../../src/audit/merkle-subtrees.js";

const hex = (hs: Uint8Array[]) => hs.map((h) => Buffer.from(h).toString("hex"));
const leavesOf = (n: number) =>
  Array.from({ length: n }, (_, i) => leafHash(new TextEncoder().encode(`e${i}`)));

/** Subtree hashes depend only on the leaves they cover, and every test uses prefixes of the same leaves. */
const memo = new Map<string, Uint8Array>();

/** A reader over an array of leaves that records every read; refuses subtrees that are not complete. */
function readerOver(leaves: Uint8Array[]) {
  const reads: SubtreeRef[][] = [];
  const read: SubtreeReader = async (refs) => {
    reads.push([...refs]);
    return refs.map(({ level, index }) => {
      const start = index * 2 ** level;
      const end = start + 2 ** level;
      if (end > leaves.length) throw new RangeError(`subtree ${level}/${index} is not complete`);
      const key = `${level}/${index}`;
      const hit = memo.get(key);
      if (hit) return hit;
      const h = treeHead(leaves.slice(start, end));
      memo.set(key, h);
      return h;
    });
  };
  return { read, reads };
}

const bound = (n: number) => 2 * Math.ceil(Math.log2(Math.max(n, 2))) + 2;

describe("Merkle proofs from stored subtrees equal the in-memory ones", () => {
  it("perfectSubtrees splits a range into aligned powers of two", () => {
    expect(perfectSubtrees(0, 13)).toEqual([
      { level: 3, index: 0 },
      { level: 2, index: 2 },
      { level: 0, index: 12 },
    ]);
    expect(perfectSubtrees(8, 16)).toEqual([{ level: 3, index: 1 }]);
    expect(perfectSubtrees(5, 5)).toEqual([]);
  });

  it("for every size up to 40: roots, every inclusion and every consistency proof", async () => {
    const all = leavesOf(40);
    for (let n = 0; n <= 40; n++) {
      const leaves = all.slice(0, n);
      const { read } = readerOver(leaves);
      expect(hex([await treeHeadFrom(read, n)])).toEqual(hex([treeHead(leaves)]));
      for (let m = 0; m < n; m++) {
        const got = await inclusionProofFrom(read, m, n);
        expect(hex(got.proof), `PATH(${m}, ${n})`).toEqual(hex(inclusionProof(leaves, m, n)));
        expect(hex([got.leaf])).toEqual(hex([leaves[m]!]));
      }
      for (let m = 0; m <= n; m++) {
        expect(hex(await consistencyProofFrom(read, m, n)), `PROOF(${m}, ${n})`).toEqual(
          hex(consistencyProof(leaves, m, n)),
        );
      }
    }
  });

  it("property: random sizes and indices give the same proofs, from one read of O(log n) hashes", async () => {
    const all = leavesOf(3000);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3000 }), fc.nat(), fc.nat(), async (n, a, b) => {
        const leaves = all.slice(0, n);
        const index = a % n;
        const first = b % (n + 1);
        const { read, reads } = readerOver(leaves);
        const got = await inclusionProofFrom(read, index, n);
        expect(hex(got.proof)).toEqual(hex(inclusionProof(leaves, index, n)));
        expect(hex(await consistencyProofFrom(read, first, n))).toEqual(
          hex(consistencyProof(leaves, first, n)),
        );
        expect(hex([await treeHeadFrom(read, n)])).toEqual(hex([treeHead(leaves)]));
        expect(reads.length).toBeLessThanOrEqual(3);
        for (const r of reads) expect(r.length).toBeLessThanOrEqual(bound(n));
      }),
      { numRuns: 100 },
    );
  });

  it("refuses sizes and indices out of range, as the in-memory generators do", async () => {
    const { read } = readerOver(leavesOf(5));
    await expect(inclusionProofFrom(read, 5, 5)).rejects.toThrow(RangeError);
    await expect(inclusionProofFrom(read, 0, 0)).rejects.toThrow(RangeError);
    await expect(consistencyProofFrom(read, 6, 5)).rejects.toThrow(RangeError);
    await expect(treeHeadFrom(read, -1)).rejects.toThrow(RangeError);
    await expect(inclusionProofFrom(read, 0, 6)).rejects.toThrow(/not complete/);
  });
});
