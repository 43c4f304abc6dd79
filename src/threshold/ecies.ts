/**
 * Threshold ciphertext, format 2 (docs/FORMATS.md §11.1): ECIES to a
 * ristretto255 public key X. Wrapping needs no share node: draw r, publish
 * R = r·G in the header, derive the single-use key from S = r·X and seal with
 * AES-256-GCM (node:crypto) under the all-zero IV, authenticating the header
 * and the canonical context hash as in format 1. Unwrapping needs S = x·R,
 * which only a quorum of share nodes can compute together (threshold-client);
 * this module takes S as given and only opens. The header has the same shape
 * as format 1 — version, key name, key version, then 32 bytes — with the
 * ephemeral point where format 1 has its nonce, so tools that read the key
 * name and version of a blob read both alike. Failures are one DecryptError,
 * as in format 1.
 */
import { createHash } from "node:crypto";
import { abytes, aint, b64u, concatBytes, u8, u32be, utf8, zero } from "../crypto/bytes.js";
import {
  aadHash,
  assertContext,
  type EncryptionContext,
  keyNameBytes,
  MAX_KEY_VERSION,
} from "../crypto/context.js";
import {
  DecryptError,
  MAX_BLOB_TEXT_LENGTH,
  MAX_PLAINTEXT_BYTES,
  openSingleUse,
  parseHeaderOf,
  sealSingleUse,
} from "../crypto/envelope.js";
import { G, POINT_BYTES, type Point, pointFromBytes, pointToBytes, randomScalar } from "./group.js";

export const FORMAT_THRESHOLD = 0x02;
export const THRESHOLD_WRAP_LABEL = utf8("custos/threshold-wrap/v1");
const TEXT_PREFIX = `custos:v${FORMAT_THRESHOLD}:`;
const _HEADER_FIXED_BYTES = 1 + 1 + 4 + POINT_BYTES;

export interface ThresholdHeader {
  format: 2;
  keyName: string;
  keyVersion: number;
  /** R = r·G. */
  ephemeral: Point;
  headerLength: number;
}

/** wk = H("custos/threshold-wrap/v1" ‖ X ‖ R ‖ S). */
function wrappingKey(publicKey: Point, ephemeral: Point, shared: Point): Uint8Array {
  const d = createHash("sha256")
    .update(THRESHOLD_WRAP_LABEL)
    .update(pointToBytes(publicKey))
    .update(pointToBytes(ephemeral))
    .update(pointToBytes(shared))
    .digest();
  const out = new Uint8Array(32);
  out.set(d);
  d.fill(0);
  return out;
}

/** Encrypts `plaintext` to the threshold key `keyName`@`keyVersion` with public key `publicKey`. */
export function thresholdWrap(
  publicKey: Point,
  keyName: string,
  keyVersion: number,
  plaintext: Uint8Array,
  context: EncryptionContext,
): Uint8Array {
  aint(keyVersion, "keyVersion", 1, MAX_KEY_VERSION);
  abytes(plaintext, "plaintext");
  if (plaintext.length > MAX_PLAINTEXT_BYTES) {
    throw new RangeError(`plaintext must be at most ${MAX_PLAINTEXT_BYTES} bytes, got ${plaintext.length}`);
  }
  assertContext(context);
  const name = keyNameBytes(keyName);
  const r = randomScalar();
  const ephemeral = G.multiply(r);
  const shared = publicKey.multiply(r);
  const header = concatBytes(
    u8(FORMAT_THRESHOLD),
    u8(name.length),
    name,
    u32be(keyVersion),
    pointToBytes(ephemeral),
  );
  const wk = wrappingKey(publicKey, ephemeral, shared);
  try {
    return sealSingleUse(wk, header, aadHash(context, keyName, keyVersion), plaintext);
  } finally {
    zero(wk);
  }
}

/** Parses and checks the clear header; DecryptError("malformed") for anything wrong, the identity included. */
export function parseThresholdHeader(blob: Uint8Array): ThresholdHeader {
  const { keyName, keyVersion, tail, headerLength } = parseHeaderOf(blob, FORMAT_THRESHOLD);
  let ephemeral: Point;
  try {
    ephemeral = pointFromBytes(tail, "ephemeral point");
  } catch {
    throw new DecryptError("malformed");
  }
  return { format: 2, keyName, keyVersion, ephemeral, headerLength };
}

/** Opens a format-2 blob given S = x·R (computed by a quorum of share nodes). */
export function thresholdOpen(
  blob: Uint8Array,
  context: EncryptionContext,
  publicKey: Point,
  shared: Point,
): Uint8Array {
  assertContext(context);
  const header = parseThresholdHeader(blob);
  const aad = aadHash(context, header.keyName, header.keyVersion);
  const wk = wrappingKey(publicKey, header.ephemeral, shared);
  try {
    return openSingleUse(wk, blob, header.headerLength, aad);
  } finally {
    zero(wk);
  }
}

export function isThresholdText(text: string): boolean {
  return typeof text === "string" && text.startsWith(TEXT_PREFIX);
}

/** `custos:v2:` ‖ b64u(blob). */
export function thresholdBlobToText(blob: Uint8Array): string {
  if (blob[0] !== FORMAT_THRESHOLD) throw new RangeError("blob must be a format-2 ciphertext");
  return TEXT_PREFIX + b64u.encode(blob);
}

export function thresholdBlobFromText(text: string): Uint8Array {
  if (typeof text !== "string" || text.length > MAX_BLOB_TEXT_LENGTH || !text.startsWith(TEXT_PREFIX)) {
    throw new DecryptError("malformed");
  }
  let blob: Uint8Array;
  try {
    blob = b64u.decode(text.slice(TEXT_PREFIX.length), "ciphertext");
  } catch {
    throw new DecryptError("malformed");
  }
  if (blob[0] !== FORMAT_THRESHOLD) throw new DecryptError("malformed");
  return blob;
}
