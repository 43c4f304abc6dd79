/**
 * Derive-then-wrap, ciphertext format 1 (docs/FORMATS.md §3). A wrap draws a
 * fresh 256-bit nonce, derives a single-use key `wk = K.prf(label ‖ nonce ‖
 * aadHash)` through the KeyHandle seam, and seals with AES-256-GCM under the
 * all-zero IV: `wk` encrypts exactly one message, so (key, IV) never repeats
 * unless the 256-bit nonce does, which is a larger margin than random 96-bit
 * IVs under one key. The header (format, key name, key version, nonce) is in
 * the clear so the caller can pick the key version, and it is authenticated
 * together with aadHash. AES-GCM runs in node:crypto (OpenSSL) because this is
 * the hot path. Unwrapping fails with one `DecryptError` whose message is
 * always "decryption failed" — an oracle that told a wrong context from an
 * altered bit would help an attacker — and whose `reason` property is for the
 * audit log only. Arguments that are the caller's own (handle, context, the
 * type of the blob) are checked first and throw TypeError/RangeError like any
 * other programming error; an error from the KeyHandle itself (a TPM or HSM
 * fault) is an internal error and propagates unchanged.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { abytes, aint, b64u, concatBytes, randomBytes, u8, u32be, utf8, zero } from "./bytes.js";
import { aadHash, assertContext, type EncryptionContext, keyNameBytes, MAX_KEY_VERSION } from "./context.js";
import type { KeyHandle } from "./key-handle.js";

export const FORMAT_V1 = 0x01;
/** Names users may give keys (docs/FORMATS.md, identifiers). */
export const KEY_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,127}$/;
/** Names custos reserves for itself: they start with '_' and can never be user key names. */
export const RESERVED_KEY_NAME_RE = /^_[a-z0-9._-]{1,127}$/;
/** The root key's reserved name; its version is the root generation (docs/FORMATS.md §4). */
export const ROOT_KEY_NAME = "_root";
export const MAX_PLAINTEXT_BYTES = 4096;
export const NONCE_BYTES = 32;
export const TAG_BYTES = 16;
/** Text blobs longer than this are refused before decoding (a full blob is about 5.7 KiB of text). */
export const MAX_BLOB_TEXT_LENGTH = 8192;

const WRAP_LABEL = utf8("custos/wrap/v1");
const ZERO_IV = new Uint8Array(12);
const TEXT_RE = /^custos:v([0-9]{1,3}):([A-Za-z0-9_-]+)$/;
// u8(format) ‖ u8(L) ‖ name(L) ‖ u32(version) ‖ nonce(32): 38 + L bytes.
const HEADER_FIXED_BYTES = 1 + 1 + 4 + NONCE_BYTES;

export type DecryptFailure = "malformed" | "unsupported_version" | "authentication_failed";

/** The one error a caller of unwrap sees. `reason` is for the audit log, never for the client. */
export class DecryptError extends Error {
  readonly reason: DecryptFailure;

  constructor(reason: DecryptFailure) {
    super("decryption failed");
    this.name = "DecryptError";
    this.reason = reason;
  }
}

export interface BlobHeader {
  format: 1;
  keyName: string;
  keyVersion: number;
  nonce: Uint8Array;
  /** 38 + length of the key name: where the ciphertext starts. */
  headerLength: number;
}

function assertHandle(handle: unknown): asserts handle is KeyHandle {
  if (typeof handle !== "object" || handle === null || typeof (handle as KeyHandle).prf !== "function") {
    throw new TypeError("handle must be a KeyHandle");
  }
}

async function deriveWrappingKey(handle: KeyHandle, nonce: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  const wk = await handle.prf(concatBytes(WRAP_LABEL, nonce, aad));
  // A handle that returned anything but 32 bytes would make AES-256 throw
  // later with a confusing message; say what is wrong instead.
  if (!(wk instanceof Uint8Array) || wk.length !== 32) throw new Error("KeyHandle.prf must return 32 bytes");
  return wk;
}

/** Encrypts `plaintext` (0..4096 bytes) under key `keyName`@`keyVersion`, bound to `context`. */
export async function wrap(
  handle: KeyHandle,
  keyName: string,
  keyVersion: number,
  plaintext: Uint8Array,
  context: EncryptionContext,
): Promise<Uint8Array> {
  assertHandle(handle);
  if (typeof keyName !== "string") throw new TypeError("keyName must be a string");
  if (!KEY_NAME_RE.test(keyName) && !RESERVED_KEY_NAME_RE.test(keyName)) {
    throw new RangeError(`keyName must match ${KEY_NAME_RE.source} (or be a reserved name such as _root)`);
  }
  aint(keyVersion, "keyVersion", 1, MAX_KEY_VERSION);
  abytes(plaintext, "plaintext");
  if (plaintext.length > MAX_PLAINTEXT_BYTES) {
    throw new RangeError(`plaintext must be at most ${MAX_PLAINTEXT_BYTES} bytes, got ${plaintext.length}`);
  }
  assertContext(context);

  const name = keyNameBytes(keyName);
  const nonce = randomBytes(NONCE_BYTES);
  const aad = aadHash(context, keyName, keyVersion);
  const header = concatBytes(u8(FORMAT_V1), u8(name.length), name, u32be(keyVersion), nonce);
  const wk = await deriveWrappingKey(handle, nonce, aad);
  try {
    return sealSingleUse(wk, header, aad, plaintext);
  } finally {
    zero(wk);
  }
}

/**
 * header ‖ AES-256-GCM(wk, iv = 0^96, plaintext, aad = header ‖ aadHash) ‖ tag.
 * Only for a key `wk` that encrypts this one message (formats 1 and 2).
 */
export function sealSingleUse(
  wk: Uint8Array,
  header: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): Uint8Array {
  const cipher = createCipheriv("aes-256-gcm", wk, ZERO_IV, { authTagLength: TAG_BYTES });
  cipher.setAAD(concatBytes(header, aad));
  const ciphertext = cipher.update(plaintext);
  const final = cipher.final();
  const blob = concatBytes(header, ciphertext, final, cipher.getAuthTag());
  zero(ciphertext, final);
  return blob;
}

/** Inverse of sealSingleUse for a blob whose header is `headerLength` bytes; DecryptError when it does not open. */
export function openSingleUse(
  wk: Uint8Array,
  blob: Uint8Array,
  headerLength: number,
  aad: Uint8Array,
): Uint8Array {
  const tagStart = blob.length - TAG_BYTES;
  let plaintext: Buffer | undefined;
  try {
    const decipher = createDecipheriv("aes-256-gcm", wk, ZERO_IV, { authTagLength: TAG_BYTES });
    decipher.setAAD(concatBytes(blob.subarray(0, headerLength), aad));
    decipher.setAuthTag(blob.subarray(tagStart));
    // GCM releases plaintext before the tag is checked; it is wiped below if final() refuses.
    plaintext = decipher.update(blob.subarray(headerLength, tagStart));
    decipher.final();
    const out = new Uint8Array(plaintext.length);
    out.set(plaintext);
    return out;
  } catch {
    throw new DecryptError("authentication_failed");
  } finally {
    zero(plaintext);
  }
}

/**
 * The clear header shared by formats 1 and 2 (§3, §11.1): u8(format) ‖ u8(L) ‖
 * name ‖ u32(version) ‖ 32 bytes (format 1: nonce; format 2: ephemeral
 * point). Checks the format byte, the name and the blob's length bounds;
 * DecryptError for anything wrong.
 */
export function parseHeaderOf(
  blob: Uint8Array,
  format: number,
): { keyName: string; keyVersion: number; tail: Uint8Array; headerLength: number } {
  abytes(blob, "blob");
  if (blob.length < 1) throw new DecryptError("malformed");
  if (blob[0] !== format) throw new DecryptError("unsupported_version");
  if (blob.length < 2) throw new DecryptError("malformed");
  const nameLength = blob[1]!;
  if (nameLength < 1 || nameLength > 128) throw new DecryptError("malformed");
  const headerLength = HEADER_FIXED_BYTES + nameLength;
  if (
    blob.length < headerLength + TAG_BYTES ||
    blob.length > headerLength + MAX_PLAINTEXT_BYTES + TAG_BYTES
  ) {
    throw new DecryptError("malformed");
  }
  const nameBytes = blob.subarray(2, 2 + nameLength);
  for (const c of nameBytes) {
    if (c < 0x21 || c > 0x7e) throw new DecryptError("malformed");
  }
  const keyName = Buffer.from(nameBytes).toString("latin1");
  const keyVersion = new DataView(blob.buffer, blob.byteOffset + 2 + nameLength, 4).getUint32(0);
  if (keyVersion < 1) throw new DecryptError("malformed");
  return { keyName, keyVersion, tail: blob.slice(2 + nameLength + 4, headerLength), headerLength };
}

/** Parses and checks the clear header of a format-1 blob; throws DecryptError for anything malformed. */
export function parseHeader(blob: Uint8Array): BlobHeader {
  const { keyName, keyVersion, tail, headerLength } = parseHeaderOf(blob, FORMAT_V1);
  return { format: 1, keyName, keyVersion, nonce: tail, headerLength };
}

/**
 * Decrypts a format-1 blob with `handle` (the key the header names) and the
 * caller's `context`. Every failure due to the blob or a mismatch throws
 * DecryptError("decryption failed").
 */
export async function unwrap(
  handle: KeyHandle,
  blob: Uint8Array,
  context: EncryptionContext,
): Promise<Uint8Array> {
  assertHandle(handle);
  abytes(blob, "blob");
  assertContext(context);
  const header = parseHeader(blob);

  const aad = aadHash(context, header.keyName, header.keyVersion);
  const wk = await deriveWrappingKey(handle, header.nonce, aad);
  try {
    return openSingleUse(wk, blob, header.headerLength, aad);
  } finally {
    zero(wk);
  }
}

/** Text form `custos:v1:` ‖ b64u(blob). */
export function blobToText(blob: Uint8Array): string {
  abytes(blob, "blob");
  if (blob[0] !== FORMAT_V1) throw new RangeError("blob must be a format-1 ciphertext");
  return `custos:v${FORMAT_V1}:${b64u.encode(blob)}`;
}

/** Inverse of blobToText; checks the prefix and that its version equals byte 0 of the blob. */
export function blobFromText(text: string): Uint8Array {
  if (typeof text !== "string") throw new TypeError("text must be a string");
  if (text.length > MAX_BLOB_TEXT_LENGTH) throw new DecryptError("malformed");
  const match = TEXT_RE.exec(text);
  if (match === null) throw new DecryptError("malformed");
  const version = Number(match[1]);
  if (match[1] !== String(version)) throw new DecryptError("malformed"); // "v01" is not "v1"
  if (version !== FORMAT_V1) throw new DecryptError("unsupported_version");
  let blob: Uint8Array;
  try {
    blob = b64u.decode(match[2]!, "ciphertext");
  } catch {
    throw new DecryptError("malformed");
  }
  if (blob[0] !== version) throw new DecryptError("malformed");
  return blob;
}
