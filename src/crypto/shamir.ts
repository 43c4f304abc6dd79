/**
 * Splitting and reconstructing the root key (docs/FORMATS.md §4–§5.1), on top
 * of the audited `shamir-secret-sharing` package (Shamir over GF(256); a share
 * is 32 bytes of y-values followed by its x-coordinate). Two things the library
 * does not do, we do here. It does not check that a reconstruction is right:
 * any k byte strings "combine" into some value. So every share gets a
 * commitment bound to the init id, its index and its holder, which names a
 * wrong or corrupted share before it is used, and the result of combining is
 * checked against the key check value HMAC(RK, "custos/kcv/v1"), which proves
 * it is RK without revealing anything about it. And it is not constant time:
 * its GF(256) multiply and divide index log/exp tables with secret bytes, so
 * cache timing on the machine doing a split or combine could leak share and
 * key bytes (README, security considerations); it also leaves its polynomial
 * coefficients in memory unwiped. Splits and combines are rare ceremony steps,
 * which bounds the exposure. Holder ids follow the custodian id rule; the rule
 * is repeated here because crypto may not import from custody.
 */
import { createHash, createHmac } from "node:crypto";
import { combine, split } from "shamir-secret-sharing";
import { abytes, aint, constantTimeEqual, u8, utf8, zero } from "./bytes.js";
import { Secret } from "./secret.js";

export const ROOT_KEY_BYTES = 32;
/** The library's share: 32 bytes of y-values, then the x-coordinate. */
export const SHARE_BYTES = ROOT_KEY_BYTES + 1;
export const INIT_ID_BYTES = 16;
export const COMMITMENT_BYTES = 32;
export const KCV_BYTES = 32;
export const MIN_THRESHOLD = 2;
export const MAX_SHARES = 32;
/** Same rule as custodian ids (docs/FORMATS.md, identifiers). */
export const HOLDER_ID_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const COMMIT_LABEL = utf8("custos/share-commit/v1");
const KCV_LABEL = utf8("custos/kcv/v1");

/** The combined shares are not the root key: fewer than k shares, or shares of different splits. */
export class KeyCheckError extends Error {
  constructor() {
    super("the reconstructed key does not match the key check value");
    this.name = "KeyCheckError";
  }
}

export interface RootKeyShare {
  /** Position 1..N of the holder in the split request. */
  index: number;
  holder: string;
  /** 33 bytes: y-values, then the x-coordinate. */
  share: Secret;
}

export interface SplitResult {
  /** In the order of `holders`. */
  shares: RootKeyShare[];
  /** commitments[i] belongs to shares[i]. */
  commitments: Uint8Array[];
}

function assertHolder(holder: unknown, what: string): asserts holder is string {
  if (typeof holder !== "string") throw new TypeError(`${what} must be a string`);
  if (!HOLDER_ID_RE.test(holder)) throw new RangeError(`${what} must match ${HOLDER_ID_RE.source}`);
}

/** A plain-Uint8Array copy: the library refuses subclasses such as Buffer (it checks `constructor`). */
function plainCopy(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  return out;
}

/** commit_i = H("custos/share-commit/v1" ‖ initId(16) ‖ u8(i) ‖ u8(len c) ‖ c ‖ share(33)) */
export function commitShare(
  initId: Uint8Array,
  index: number,
  holder: string,
  share: Uint8Array,
): Uint8Array {
  abytes(initId, "initId", INIT_ID_BYTES);
  aint(index, "index", 1, MAX_SHARES);
  assertHolder(holder, "holder");
  abytes(share, "share", SHARE_BYTES);
  const c = utf8(holder);
  const digest = createHash("sha256")
    .update(COMMIT_LABEL)
    .update(initId)
    .update(u8(index))
    .update(u8(c.length))
    .update(c)
    .update(share)
    .digest();
  return Uint8Array.from(digest);
}

/** True when `share` is the share committed to for (initId, index, holder); constant time in the share. */
export function verifyShareCommitment(
  initId: Uint8Array,
  index: number,
  holder: string,
  share: Uint8Array,
  commitment: Uint8Array,
): boolean {
  abytes(share, "share");
  abytes(commitment, "commitment");
  if (share.length !== SHARE_BYTES) return false;
  return constantTimeEqual(commitShare(initId, index, holder, share), commitment);
}

/** kcv = HMAC(RK, "custos/kcv/v1") */
export function keyCheckValue(secret: Secret): Uint8Array {
  if (!(secret instanceof Secret)) throw new TypeError("secret must be a Secret");
  const digest = createHmac("sha256", secret.reveal()).update(KCV_LABEL).digest();
  return Uint8Array.from(digest);
}

/**
 * Splits the 32-byte root key k-of-N among `holders` (share index = position
 * + 1) and commits to every share. Before returning, it checks that the first
 * k shares give the key back, so a faulty split never reaches custodians.
 */
export async function splitRootKey(
  secret: Secret,
  holders: string[],
  threshold: number,
  initId: Uint8Array,
): Promise<SplitResult> {
  if (!(secret instanceof Secret)) throw new TypeError("secret must be a Secret");
  if (secret.length !== ROOT_KEY_BYTES) throw new RangeError(`secret must be ${ROOT_KEY_BYTES} bytes`);
  if (!Array.isArray(holders)) throw new TypeError("holders must be an array of holder ids");
  aint(holders.length, "holders.length", MIN_THRESHOLD, MAX_SHARES);
  aint(threshold, "threshold", MIN_THRESHOLD, holders.length);
  abytes(initId, "initId", INIT_ID_BYTES);
  const seen = new Set<string>();
  holders.forEach((h, i) => {
    assertHolder(h, `holders[${i}]`);
    if (seen.has(h)) throw new RangeError(`holders[${i}] '${h}' appears more than once`);
    seen.add(h);
  });

  const rk = plainCopy(secret.reveal());
  let raw: Uint8Array[] = [];
  let check: Uint8Array | undefined;
  try {
    raw = await split(rk, holders.length, threshold);
    check = await combine(raw.slice(0, threshold));
    if (!constantTimeEqual(check, rk))
      throw new Error("Shamir split self-check failed: shares do not reconstruct");
  } catch (err) {
    zero(...raw);
    throw err;
  } finally {
    zero(rk, check);
  }
  const shares = raw.map((share, i) => ({ index: i + 1, holder: holders[i]!, share: Secret.of(share) }));
  const commitments = shares.map((s) => commitShare(initId, s.index, s.holder, s.share.reveal()));
  return { shares, commitments };
}

/**
 * Combines shares (33 bytes each, any order) and returns the key only if it
 * matches `kcv`; otherwise throws KeyCheckError. Fewer than k shares combine
 * into a wrong key, which is exactly what the KCV catches.
 */
export async function combineShares(shares: Uint8Array[], kcv: Uint8Array): Promise<Secret> {
  if (!Array.isArray(shares)) throw new TypeError("shares must be an array");
  aint(shares.length, "shares.length", MIN_THRESHOLD, MAX_SHARES);
  abytes(kcv, "kcv", KCV_BYTES);
  const xs = new Set<number>();
  shares.forEach((s, i) => {
    abytes(s, `shares[${i}]`, SHARE_BYTES);
    const x = s[SHARE_BYTES - 1]!;
    if (x === 0) throw new RangeError(`shares[${i}] has x-coordinate 0, which no share can have`);
    if (xs.has(x)) throw new RangeError(`shares[${i}] repeats the x-coordinate of another share`);
    xs.add(x);
  });

  const copies = shares.map(plainCopy);
  let candidate: Uint8Array | undefined;
  try {
    candidate = await combine(copies);
  } finally {
    zero(...copies);
  }
  const key = Secret.of(candidate);
  if (!constantTimeEqual(keyCheckValue(key), kcv)) {
    key.dispose();
    throw new KeyCheckError();
  }
  return key;
}
