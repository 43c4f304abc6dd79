/**
 * Byte helpers that every format module shares: strict text encodings,
 * fixed-width big-endian integers, concatenation, named assertions, a
 * constant-time comparison and the CSPRNG. The decoders are strict on purpose:
 * each value has exactly one accepted text form (no padding, no whitespace, no
 * alternative alphabet, no non-zero trailing bits, lowercase hex only), so a
 * stored or signed value cannot be re-spelled into a second form that still
 * parses. Assertions throw TypeError for a wrong type and RangeError for a bad
 * value, and always name the argument. Everything returned is a plain
 * Uint8Array with its own buffer (never a pooled Buffer slice), so `zero()` on
 * it wipes exactly those bytes and nothing else.
 */
import { randomFillSync, timingSafeEqual } from "node:crypto";

const B64U_ALPHABET_RE = /^[A-Za-z0-9_-]*$/;
const HEX_RE = /^(?:[0-9a-f]{2})*$/;
// A lone surrogate is replaced by U+FFFD by TextEncoder, so two different
// strings would share one encoding; canonical encodings must refuse it.
const LONE_SURROGATE_RE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const encoder = new TextEncoder();

/** Asserts `value` is a Uint8Array (Buffer included) and, if given, exactly `length` bytes long. */
export function abytes(value: unknown, what: string, length?: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`${what} must be ${length} bytes, got ${value.length}`);
  }
}

/** Asserts `value` is an integer in [min, max]. */
export function aint(value: unknown, what: string, min: number, max: number): asserts value is number {
  if (typeof value !== "number" || !Number.isInteger(value))
    throw new TypeError(`${what} must be an integer`);
  if (value < min || value > max)
    throw new RangeError(`${what} must be between ${min} and ${max}, got ${value}`);
}

/** Asserts `value` is a string. */
export function astring(value: unknown, what: string): asserts value is string {
  if (typeof value !== "string") throw new TypeError(`${what} must be a string`);
}

/** A copy of `bytes` in a fresh, unshared buffer. */
function own(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  return out;
}

function view(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** base64url without padding (RFC 4648 §5), strict on decoding. */
export const b64u = {
  encode(bytes: Uint8Array): string {
    abytes(bytes, "bytes");
    return view(bytes).toString("base64url");
  },
  /** Refuses padding, whitespace, characters outside the alphabet and non-canonical trailing bits. */
  decode(text: string, what: string): Uint8Array {
    astring(text, what);
    if (!B64U_ALPHABET_RE.test(text) || text.length % 4 === 1) {
      throw new RangeError(`${what} must be unpadded base64url (RFC 4648 §5)`);
    }
    const decoded = Buffer.from(text, "base64url");
    // Node ignores non-zero bits in the last character; re-encoding finds them.
    if (decoded.toString("base64url") !== text) {
      decoded.fill(0);
      throw new RangeError(`${what} is not canonical base64url`);
    }
    const out = own(decoded);
    decoded.fill(0);
    return out;
  },
};

/** Lowercase hexadecimal; decoding refuses uppercase so each value has one text form. */
export const hex = {
  encode(bytes: Uint8Array): string {
    abytes(bytes, "bytes");
    return view(bytes).toString("hex");
  },
  decode(text: string, what: string): Uint8Array {
    astring(text, what);
    if (!HEX_RE.test(text)) throw new RangeError(`${what} must be lowercase hexadecimal with an even length`);
    const decoded = Buffer.from(text, "hex");
    const out = own(decoded);
    decoded.fill(0);
    return out;
  },
};

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  parts.forEach((p, i) => {
    abytes(p, `parts[${i}]`);
    length += p.length;
  });
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function u8(n: number): Uint8Array {
  aint(n, "n", 0, 0xff);
  return Uint8Array.of(n);
}

export function u32be(n: number): Uint8Array {
  aint(n, "n", 0, 0xffff_ffff);
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

/** Big-endian u64 of a non-negative safe integer (JavaScript numbers stop being exact at 2^53). */
export function u64be(n: number): Uint8Array {
  aint(n, "n", 0, Number.MAX_SAFE_INTEGER);
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

/** UTF-8 of a well-formed string; refuses lone surrogates (see LONE_SURROGATE_RE). */
export function utf8(s: string, what = "s"): Uint8Array {
  astring(s, what);
  if (LONE_SURROGATE_RE.test(s)) throw new RangeError(`${what} contains a lone UTF-16 surrogate`);
  return encoder.encode(s);
}

/** Constant-time equality of two byte strings; false (not an error) when the lengths differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  abytes(a, "a");
  abytes(b, "b");
  // The length is public in every use here (fixed-size MACs, hashes, commitments).
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

// Small requests (nonces, data keys) are served from a pool refilled 4 KiB at
// a time: one call into OpenSSL per ~60 operations instead of two per
// operation, which the envelope benchmark showed at 5-7 % of server CPU. Each
// byte is handed out once and zeroed in the pool as it leaves.
const POOL_BYTES = 4096;
const POOLED_MAX = 256;
const pool = new Uint8Array(POOL_BYTES);
let poolOffset = POOL_BYTES;

/** `n` bytes from the operating system's CSPRNG, in a buffer of their own. */
export function randomBytes(n: number): Uint8Array {
  aint(n, "n", 0, 65536);
  const out = new Uint8Array(n);
  if (n > POOLED_MAX) {
    randomFillSync(out);
    return out;
  }
  if (poolOffset + n > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const end = poolOffset + n;
  out.set(pool.subarray(poolOffset, end));
  pool.fill(0, poolOffset, end);
  poolOffset = end;
  return out;
}

/** Overwrites every given buffer with zeros; undefined and null are skipped for use in `finally`. */
export function zero(...bufs: (Uint8Array | undefined | null)[]): void {
  for (const b of bufs) b?.fill(0);
}
