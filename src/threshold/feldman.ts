/**
 * Feldman verifiable secret sharing over ristretto255, the building block of
 * the distributed key generation and of proactive refresh (docs/FORMATS.md
 * §11.3). A dealer picks a random polynomial f of degree t−1, publishes
 * C_l = a_l·G and gives share f(j) to participant j, who checks
 * f(j)·G = Σ_l j^l·C_l. For a refresh the dealer's constant term is zero;
 * its commitment C_0 would be the identity, which no encoding here carries,
 * so refresh dealings publish C_1..C_{t−1} only and C_0 is implied. Feldman
 * commitments reveal a_0·G (the dealer's contribution to the public key),
 * which is the point of a DKG for an ElGamal-type key; see §11.3 for what
 * that costs (the Gennaro et al. bias).
 */
import { G, mod, Point, randomScalar, sumProducts } from "./group.js";

export interface Dealing {
  /** a_0..a_{t−1} (secret; a_0 = 0 for a refresh). */
  coefficients: bigint[];
  /** a_l·G; for a refresh, C_1..C_{t−1} only. */
  commitments: Point[];
  zeroSecret: boolean;
}

export const MAX_PARTICIPANTS = 32;

/** A fresh polynomial of degree `threshold − 1`; with `zeroSecret`, f(0) = 0. */
export function deal(threshold: number, zeroSecret = false): Dealing {
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > MAX_PARTICIPANTS) {
    throw new RangeError(`threshold must be between 1 and ${MAX_PARTICIPANTS}`);
  }
  const coefficients = Array.from({ length: threshold }, (_, l) =>
    l === 0 && zeroSecret ? 0n : randomScalar(),
  );
  const commitments = coefficients.slice(zeroSecret ? 1 : 0).map((a) => G.multiply(a));
  return { coefficients, commitments, zeroSecret };
}

/** f(j) by Horner's rule. */
export function evaluate(coefficients: readonly bigint[], j: number): bigint {
  let acc = 0n;
  for (let l = coefficients.length - 1; l >= 0; l--) acc = mod(acc * BigInt(j) + coefficients[l]!);
  return acc;
}

/** Σ_l j^l·C_l; for zero-secret commitments (C_1..) the sum starts at l = 1. */
export function evaluateCommitments(commitments: readonly Point[], j: number, zeroSecret = false): Point {
  const offset = zeroSecret ? 1 : 0;
  const powers = commitments.map((_, l) => mod(BigInt(j) ** BigInt(l + offset)));
  return sumProducts(commitments, powers);
}

/** Does share `y` for participant `j` match the dealer's commitments? (y·G; noble refuses 0·G.) */
export function verifyShare(
  y: bigint,
  j: number,
  commitments: readonly Point[],
  zeroSecret = false,
): boolean {
  const left = mod(y) === 0n ? Point.ZERO : G.multiply(mod(y));
  return left.equals(evaluateCommitments(commitments, j, zeroSecret));
}

/** Component-wise sum of several dealers' commitment vectors (all of the same length). */
export function addCommitments(vectors: readonly (readonly Point[])[]): Point[] {
  const length = vectors[0]?.length ?? 0;
  if (vectors.some((v) => v.length !== length)) throw new RangeError("commitment vectors differ in length");
  return Array.from({ length }, (_, l) => vectors.reduce((acc, v) => acc.add(v[l]!), Point.ZERO));
}
