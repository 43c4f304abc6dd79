/**
 * The Merkle tree against RFC 9162 §2.1: the Certificate Transparency
 * reference tree (test/vectors/rfc6962-ct-reference.json), and, for every
 * tree size up to 64, every inclusion proof and every consistency proof,
 * checked by the module's verifiers and by an independent verifier written
 * here from the RFC's *definitions* (§2.1.3.1 PATH, §2.1.4.1 SUBPROOF):
 * it rebuilds the roots by walking the same recursion and consuming the proof
 * from its end, rather than running the iterative algorithms of §2.1.3.2 and
 * §2.1.4.2 that the module implements.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  consistencyProof,
  inclusionProof,
  leafHash,
  treeHead,
  verifyConsistency,
  verifyInclusion,
} from "../../src/audit/merkle.js";

const vectors = JSON.parse(
  readFileSync(new URL("../vectors/rfc6962-ct-reference.json", import.meta.url), "utf8"),
) as { leaves: string[]; roots: string[]; inclusion: { index: number; size: number; proof: string[] }[] };

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));

// ---- the independent verifier, from the RFC text --------------------------------------------

const H = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const node = (l: Uint8Array, r: Uint8Array) => H(Uint8Array.of(1), l, r);
/** "the largest power of two smaller than n" (§2.1.1) */
const kOf = (n: number) => 2 ** Math.floor(Math.log2(n - 1));

/** Reference MTH straight from §2.1.1. */
function mth(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return H();
  if (leaves.length === 1) return leaves[0]!;
  const k = kOf(leaves.length);
  return node(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

/**
 * Root implied by PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) (m < k) or
 * PATH(m - k, D[k:n]) : MTH(D[0:k]) (m ≥ k): the last proof element is the
 * sibling at the top; recurse on the rest. Returns null on a malformed proof.
 */
function rootFromPath(leaf: Uint8Array, m: number, n: number, proof: Uint8Array[]): Uint8Array | null {
  if (n === 1) return proof.length === 0 && m === 0 ? leaf : null;
  if (proof.length === 0) return null;
  const k = kOf(n);
  const sibling = proof[proof.length - 1]!;
  const rest = proof.slice(0, -1);
  if (m < k) {
    const left = rootFromPath(leaf, m, k, rest);
    return left && node(left, sibling);
  }
  const right = rootFromPath(leaf, m - k, n - k, rest);
  return right && node(sibling, right);
}

/**
 * Both roots implied by SUBPROOF(m, D[n], b) (§2.1.4.1), consuming the proof
 * from its end. `known` is MTH(D[0:m]) when b is true (the verifier has it);
 * returns [old root, new root] or null.
 */
function rootsFromSubproof(
  m: number,
  n: number,
  proof: Uint8Array[],
  b: boolean,
  known: Uint8Array,
): [Uint8Array, Uint8Array] | null {
  if (m === n) {
    if (b) return proof.length === 0 ? [known, known] : null;
    return proof.length === 1 ? [proof[0]!, proof[0]!] : null;
  }
  if (proof.length === 0) return null;
  const k = kOf(n);
  const last = proof[proof.length - 1]!;
  const rest = proof.slice(0, -1);
  if (m <= k) {
    const sub = rootsFromSubproof(m, k, rest, b, known);
    return sub && [sub[0], node(sub[1], last)];
  }
  const sub = rootsFromSubproof(m - k, n - k, rest, false, known);
  return sub && [node(last, sub[0]), node(last, sub[1])];
}

function independentlyConsistent(
  m: number,
  n: number,
  proof: Uint8Array[],
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
) {
  const roots = rootsFromSubproof(m, n, proof, true, oldRoot);
  return roots !== null && hex(roots[0]) === hex(oldRoot) && hex(roots[1]) === hex(newRoot);
}

// ---- tests ------------------------------------------------------------------------------------

describe("Merkle tree (RFC 9162 §2.1)", () => {
  const ctLeaves = vectors.leaves.map((l) => leafHash(unhex(l)));

  it("reproduces the reference tree heads for sizes 0..8", () => {
    for (let n = 0; n <= 8; n++) expect(hex(treeHead(ctLeaves, n))).toBe(vectors.roots[n]);
  });

  it("reproduces the reference inclusion proofs", () => {
    for (const v of vectors.inclusion) {
      expect(inclusionProof(ctLeaves, v.index, v.size).map(hex)).toEqual(v.proof);
      const root = unhex(vectors.roots[v.size]!);
      expect(verifyInclusion(ctLeaves[v.index]!, v.index, v.size, v.proof.map(unhex), root)).toBe(true);
    }
  });

  const leaves = Array.from({ length: 64 }, (_, i) => leafHash(new TextEncoder().encode(`event ${i}`)));
  const roots = Array.from({ length: 65 }, (_, n) => mth(leaves.slice(0, n)));

  it("agrees with the reference MTH for every size up to 64", () => {
    for (let n = 0; n <= 64; n++) expect(hex(treeHead(leaves, n))).toBe(hex(roots[n]!));
  });

  it("proves every leaf's inclusion in every tree up to 64, by both verifiers", () => {
    for (let n = 1; n <= 64; n++) {
      for (let m = 0; m < n; m++) {
        const proof = inclusionProof(leaves, m, n);
        expect(verifyInclusion(leaves[m]!, m, n, proof, roots[n]!)).toBe(true);
        expect(hex(rootFromPath(leaves[m]!, m, n, proof) ?? new Uint8Array())).toBe(hex(roots[n]!));
        // The same proof must not vouch for another leaf, index or size.
        expect(verifyInclusion(leaves[(m + 1) % n]!, m, n, proof, roots[n]!)).toBe(n === 1);
        if (n > 1) expect(verifyInclusion(leaves[m]!, (m + 1) % n, n, proof, roots[n]!)).toBe(false);
        expect(verifyInclusion(leaves[m]!, m, n + 1, proof, roots[n + 1] ?? roots[n]!)).toBe(false);
      }
    }
  });

  it("proves consistency between every pair of sizes up to 64, by both verifiers", () => {
    for (let n = 1; n <= 64; n++) {
      for (let m = 1; m <= n; m++) {
        const proof = consistencyProof(leaves, m, n);
        expect(verifyConsistency(m, n, proof, roots[m]!, roots[n]!)).toBe(true);
        expect(independentlyConsistent(m, n, proof, roots[m]!, roots[n]!)).toBe(true);
        if (m < n) {
          // A forked old head (any other tree of size m) must not be consistent.
          const forked = mth([...leaves.slice(0, m - 1), leafHash(Uint8Array.of(0xff))]);
          expect(verifyConsistency(m, n, proof, forked, roots[n]!)).toBe(false);
          expect(verifyConsistency(m, n, proof, roots[m]!, roots[m]!)).toBe(m === n);
        }
      }
    }
  });

  it("refuses altered, truncated and extended proofs", () => {
    for (const [m, n] of [
      [3, 7],
      [4, 8],
      [5, 64],
      [31, 33],
    ] as const) {
      const proof = consistencyProof(leaves, m, n);
      for (let i = 0; i < proof.length; i++) {
        const altered = proof.map((p, j) => (j === i ? H(p) : p));
        expect(verifyConsistency(m, n, altered, roots[m]!, roots[n]!)).toBe(false);
      }
      expect(verifyConsistency(m, n, proof.slice(1), roots[m]!, roots[n]!)).toBe(false);
      expect(verifyConsistency(m, n, [...proof, roots[0]!], roots[m]!, roots[n]!)).toBe(false);
      const path = inclusionProof(leaves, m, n);
      expect(verifyInclusion(leaves[m]!, m, n, path.slice(0, -1), roots[n]!)).toBe(false);
      expect(verifyInclusion(leaves[m]!, m, n, [...path, roots[0]!], roots[n]!)).toBe(false);
    }
  });

  it("refuses sizes and indices out of range", () => {
    expect(() => inclusionProof(leaves, 5, 5)).toThrow(RangeError);
    expect(() => inclusionProof(leaves, 0, 65)).toThrow(RangeError);
    expect(() => consistencyProof(leaves, 6, 5)).toThrow(RangeError);
    expect(verifyInclusion(leaves[0]!, -1, 4, [], roots[4]!)).toBe(false);
    expect(verifyConsistency(5, 4, [], roots[5]!, roots[4]!)).toBe(false);
  });
});
