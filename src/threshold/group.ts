/**
 * The group every threshold key lives in: ristretto255 (RFC 9496), through
 * @noble/curves. Chosen by measurement (bench/threshold.ts, docs/FORMATS.md
 * §11): an unwrap costs about a dozen multiplications of points that are not
 * the base point, and @noble's ristretto255 does those 2-4x faster than its
 * P-256, which is what brings a 3-of-5 unwrap under the 10 ms target. It is a
 * prime-order group (no cofactor to clear, no small-subgroup points to
 * refuse), and its encoding is canonical: one 32-byte string per element, so
 * a point that decodes is a valid group element and hashing encodings is
 * unambiguous. Scalars are 32 bytes little-endian, always reduced mod ℓ and
 * refused when not canonical. Decoding refuses the identity: no partial,
 * commitment or public key may be the neutral element. JavaScript bigints
 * cannot be wiped; secret scalars are kept as bytes in a Secret between uses
 * (README, Security considerations).
 */
import { createHash } from "node:crypto";
import { mulAddUnsafe } from "@noble/curves/abstract/curve.js";
import { ristretto255 } from "@noble/curves/ed25519.js";
import { abytes, randomBytes, u8, u32be, zero } from "../crypto/bytes.js";

export const Point = ristretto255.Point;
export type Point = InstanceType<typeof Point>;
/** ℓ = 2^252 + 27742317777372353535851937790883648493, the group order. */
export const ORDER: bigint = Point.Fn.ORDER;
export const POINT_BYTES = 32;
export const SCALAR_BYTES = 32;
export const G: Point = Point.BASE;

export function mod(a: bigint): bigint {
  const r = a % ORDER;
  return r < 0n ? r + ORDER : r;
}

export function inv(a: bigint): bigint {
  if (mod(a) === 0n) throw new RangeError("cannot invert zero");
  return Point.Fn.inv(mod(a));
}

function leToBigint(bytes: Uint8Array): bigint {
  let x = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(bytes[i]!);
  return x;
}

/** 32-byte little-endian encoding of a scalar in [0, ℓ). */
export function scalarToBytes(s: bigint): Uint8Array {
  if (s < 0n || s >= ORDER) throw new RangeError("scalar must be reduced mod the group order");
  const out = new Uint8Array(SCALAR_BYTES);
  let x = s;
  for (let i = 0; i < SCALAR_BYTES; i++) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

/** Decodes a canonical scalar (< ℓ); refuses anything else, and zero unless `allowZero`. */
export function scalarFromBytes(bytes: Uint8Array, what: string, allowZero = false): bigint {
  abytes(bytes, what, SCALAR_BYTES);
  const s = leToBigint(bytes);
  if (s >= ORDER) throw new RangeError(`${what} is not a canonical scalar (not reduced mod the group order)`);
  if (s === 0n && !allowZero) throw new RangeError(`${what} must not be zero`);
  return s;
}

/** A uniformly random non-zero scalar: 64 CSPRNG bytes reduced mod ℓ (bias < 2^-250). */
export function randomScalar(): bigint {
  for (;;) {
    const wide = randomBytes(64);
    const s = mod(leToBigint(wide));
    zero(wide);
    if (s !== 0n) return s;
  }
}

// Encoding a ristretto255 point costs an inverse square root; an unwrap hashes
// and sends the same few points several times. Points are immutable, so each
// keeps the encoding it was decoded from or first encoded to.
const encodings = new WeakMap<Point, Uint8Array>();

export function pointToBytes(p: Point): Uint8Array {
  let bytes = encodings.get(p);
  if (bytes === undefined) {
    bytes = p.toBytes();
    encodings.set(p, bytes);
  }
  return Uint8Array.from(bytes);
}

/** Decodes a canonical ristretto255 encoding; refuses invalid encodings and the identity. */
export function pointFromBytes(bytes: Uint8Array, what: string): Point {
  abytes(bytes, what, POINT_BYTES);
  let p: Point;
  try {
    p = Point.fromBytes(bytes);
  } catch {
    throw new RangeError(`${what} is not a valid ristretto255 point`);
  }
  if (p.is0()) throw new RangeError(`${what} must not be the identity`);
  encodings.set(p, Uint8Array.from(bytes));
  return p;
}

/**
 * Hash to a scalar with domain separation: SHA-512(label ‖ for each part:
 * u32(len) ‖ part) mod ℓ. Length prefixes keep different splits of the same
 * bytes apart; 512 bits reduced mod a 253-bit ℓ is statistically uniform.
 */
export function hashToScalar(label: Uint8Array, ...parts: Uint8Array[]): bigint {
  const h = createHash("sha512").update(u8(label.length)).update(label);
  for (const p of parts) h.update(u32be(p.length)).update(p);
  const d = h.digest();
  return mod(leToBigint(d));
}

/**
 * Lagrange coefficient at 0 of index `i` over the set `indices` (distinct,
 * non-zero): λ_i = Π_{j≠i} j / (j − i) mod ℓ. Combining y_i·λ_i (or, in the
 * exponent, λ_i·P_i) over any threshold-sized set gives f(0).
 */
export function lagrangeAtZero(i: number, indices: readonly number[]): bigint {
  let num = 1n;
  let den = 1n;
  for (const j of indices) {
    if (j === i) continue;
    num = mod(num * BigInt(j));
    den = mod(den * BigInt(j - i));
  }
  return mod(num * inv(den));
}

/**
 * Σ s_i·P_i for public scalars, as one interleaved multi-scalar
 * multiplication (about 3x faster than separate products for a dozen
 * points). Variable time: only for values that are not secret.
 */
export function sumProducts(points: readonly Point[], scalars: readonly bigint[]): Point {
  if (points.length !== scalars.length) throw new RangeError("points and scalars must have the same length");
  if (points.length === 0) return Point.ZERO;
  return mulAddUnsafe(Point, [...points], scalars.map(mod));
}
