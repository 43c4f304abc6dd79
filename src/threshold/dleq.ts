/**
 * Chaum–Pedersen proof that two discrete logarithms are equal (DLEQ): a share
 * node proves that its partial P = x·R uses the same x as its public
 * verification share Y = x·G, without revealing x. The proof is kept in its
 * commitment form (A, B, z) rather than the shorter (e, z): the verifier
 * recomputes e from A and B, and a set of proofs can then be checked with one
 * multi-scalar multiplication under random weights (batchVerify), which is
 * what keeps a threshold unwrap cheap. Only when the batch fails are proofs
 * checked one by one, to name the node whose partial is wrong. The challenge
 * is bound to a caller-given context (key name, version, trust set, index),
 * so a proof cannot be replayed for another key or index.
 */
import { concatBytes, utf8 } from "../crypto/bytes.js";
import {
  G,
  hashToScalar,
  mod,
  POINT_BYTES,
  type Point,
  pointFromBytes,
  pointToBytes,
  randomScalar,
  SCALAR_BYTES,
  scalarFromBytes,
  scalarToBytes,
  sumProducts,
} from "./group.js";

export const DLEQ_LABEL = utf8("custos/threshold-dleq/v1");
export const DLEQ_PROOF_BYTES = 2 * POINT_BYTES + SCALAR_BYTES;

export interface DleqStatement {
  /** Bytes that bind the proof to its use (docs/FORMATS.md §11.5). */
  context: Uint8Array;
  /** Verification share Y = x·G. */
  y: Point;
  /** The point the partial was computed on. */
  r: Point;
  /** The partial P = x·R. */
  p: Point;
}

export interface DleqProof {
  a: Point;
  b: Point;
  z: bigint;
}

function challenge(s: DleqStatement, a: Point, b: Point): bigint {
  return hashToScalar(
    DLEQ_LABEL,
    s.context,
    pointToBytes(s.y),
    pointToBytes(s.r),
    pointToBytes(s.p),
    pointToBytes(a),
    pointToBytes(b),
  );
}

/** Proves log_G(Y) = log_R(P) = x. `x` is secret: the multiplications here are constant time. */
export function proveDleq(x: bigint, s: DleqStatement): DleqProof {
  const k = randomScalar();
  const a = G.multiply(k);
  const b = s.r.multiply(k);
  const e = challenge(s, a, b);
  return { a, b, z: mod(k + e * x) };
}

/** z·G = A + e·Y and z·R = B + e·P. */
export function verifyDleq(s: DleqStatement, proof: DleqProof): boolean {
  const e = challenge(s, proof.a, proof.b);
  const n = (v: bigint) => mod(-v);
  return (
    sumProducts([G, proof.a, s.y], [proof.z, n(1n), n(e)]).is0() &&
    sumProducts([s.r, proof.b, s.p], [proof.z, n(1n), n(e)]).is0()
  );
}

/**
 * All proofs at once: Σ ρ_i(z_i·G − A_i − e_i·Y_i) + σ_i(z_i·R_i − B_i − e_i·P_i) = 0
 * with fresh 128-bit random weights ρ_i, σ_i. A wrong proof passes with
 * probability at most 2^-128; a false result says only "some proof is wrong".
 */
export function batchVerifyDleq(items: readonly { s: DleqStatement; proof: DleqProof }[]): boolean {
  if (items.length === 0) return true;
  // In an unwrap every proof is on the same R: its scalars are summed into one term.
  const sharedR = items[0]!.s.r;
  const points: Point[] = [G, sharedR];
  const scalars: bigint[] = [0n, 0n];
  for (const { s, proof } of items) {
    const e = challenge(s, proof.a, proof.b);
    const rho = randomScalar() >> 125n;
    const sigma = randomScalar() >> 125n;
    scalars[0] = mod(scalars[0]! + rho * proof.z);
    if (s.r === sharedR || s.r.equals(sharedR)) {
      scalars[1] = mod(scalars[1]! + sigma * proof.z);
    } else {
      points.push(s.r);
      scalars.push(mod(sigma * proof.z));
    }
    points.push(proof.a, s.y, proof.b, s.p);
    scalars.push(mod(-rho), mod(-rho * e), mod(-sigma), mod(-sigma * e));
  }
  return sumProducts(points, scalars).is0();
}

export function encodeDleq(proof: DleqProof): Uint8Array {
  return concatBytes(pointToBytes(proof.a), pointToBytes(proof.b), scalarToBytes(proof.z));
}

/** Parses A ‖ B ‖ z; throws RangeError naming `what` for a bad length, point or scalar. */
export function decodeDleq(bytes: Uint8Array, what: string): DleqProof {
  if (!(bytes instanceof Uint8Array) || bytes.length !== DLEQ_PROOF_BYTES) {
    throw new RangeError(`${what} must be ${DLEQ_PROOF_BYTES} bytes`);
  }
  return {
    a: pointFromBytes(bytes.subarray(0, 32), `${what}.A`),
    b: pointFromBytes(bytes.subarray(32, 64), `${what}.B`),
    z: scalarFromBytes(bytes.subarray(64, 96), `${what}.z`, true),
  };
}
