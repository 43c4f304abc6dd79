import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  addCommitments,
  deal,
  evaluate,
  evaluateCommitments,
  verifyShare,
} from "../../src/threshold/feldman.js";
import {
  G,
  lagrangeAtZero,
  mod,
  ORDER,
  pointFromBytes,
  pointToBytes,
  randomScalar,
  scalarFromBytes,
  scalarToBytes,
  sumProducts,
} from "../../src/threshold/group.js";

describe("Feldman VSS", () => {
  it("every share verifies against its dealer's commitments; a changed share or index does not", () => {
    const d = deal(3);
    for (let j = 1; j <= 5; j++) {
      const y = evaluate(d.coefficients, j);
      expect(verifyShare(y, j, d.commitments)).toBe(true);
      expect(verifyShare(mod(y + 1n), j, d.commitments)).toBe(false);
      expect(verifyShare(y, j + 1, d.commitments)).toBe(false);
    }
  });

  it("zero-secret dealings (refresh) commit to C_1.. only and verify with zeroSecret", () => {
    const d = deal(3, true);
    expect(d.coefficients[0]).toBe(0n);
    expect(d.commitments).toHaveLength(2);
    expect(verifyShare(evaluate(d.coefficients, 4), 4, d.commitments, true)).toBe(true);
    expect(verifyShare(evaluate(d.coefficients, 4), 4, d.commitments, false)).toBe(false);
  });

  it("summed dealings: the verification share of the sum is the sum of verification shares", () => {
    const ds = [deal(2), deal(2), deal(2)];
    const agg = addCommitments(ds.map((d) => d.commitments));
    const x3 = ds.reduce((a, d) => mod(a + evaluate(d.coefficients, 3)), 0n);
    expect(G.multiply(x3).equals(evaluateCommitments(agg, 3))).toBe(true);
  });
});

describe("Lagrange interpolation in the exponent", () => {
  it("any threshold-sized subset of partials x_i·R combines to x·R (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 4 }),
        fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 8 }),
        (t, extra, picks) => {
          const n = t + extra;
          const d = deal(t);
          const r = G.multiply(randomScalar());
          const all = Array.from({ length: n }, (_, i) => i + 1);
          const subset: number[] = [];
          for (const p of picks) {
            const left = all.filter((j) => !subset.includes(j));
            if (subset.length < t) subset.push(left[p % left.length]!);
          }
          while (subset.length < t) subset.push(all.find((j) => !subset.includes(j))!);
          const partials = subset.map((j) => r.multiply(evaluate(d.coefficients, j)));
          const lambdas = subset.map((j) => lagrangeAtZero(j, subset));
          return sumProducts(partials, lambdas).equals(r.multiply(d.coefficients[0]!));
        },
      ),
      { numRuns: 40 },
    );
  });

  it("fewer than t partials give a different point", () => {
    const d = deal(3);
    const r = G.multiply(randomScalar());
    const subset = [1, 2];
    const combined = sumProducts(
      subset.map((j) => r.multiply(evaluate(d.coefficients, j))),
      subset.map((j) => lagrangeAtZero(j, subset)),
    );
    expect(combined.equals(r.multiply(d.coefficients[0]!))).toBe(false);
  });
});

describe("group encodings", () => {
  it("scalars round-trip and must be canonical; points refuse the identity and junk", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: ORDER - 1n }),
        (s) => scalarFromBytes(scalarToBytes(s), "s", true) === s,
      ),
    );
    expect(() => scalarFromBytes(scalarToBytes(0n), "s")).toThrow(/zero/);
    expect(() => pointFromBytes(new Uint8Array(32), "p")).toThrow(/identity/);
    expect(() => pointFromBytes(new Uint8Array(32).fill(0xff), "p")).toThrow(/valid/);
    const p = G.multiply(randomScalar());
    expect(pointFromBytes(pointToBytes(p), "p").equals(p)).toBe(true);
  });
});
