/**
 * The encryption context and the AAD hash (docs/FORMATS.md §2). A context is
 * a small string map the caller must present again to decrypt ("patient":
 * "MRN-1", "institution": "nyu"); it is bound into every ciphertext through
 * `aadHash`, together with the key name and version, so a blob cannot be
 * replayed under another context, key or version. The canonical encoding
 * sorts entries by the UTF-8 bytes of their keys and length-prefixes every
 * field, so two different maps never share an encoding. Limits are exported
 * constants because the HTTP schemas check the same limits at the edge; here
 * they are checked again since this is the layer whose correctness depends on
 * them. A context must be a plain object: a Map or a class instance would
 * silently read as the empty context.
 */
import { createHash } from "node:crypto";
import { aint, utf8 } from "./bytes.js";

export type EncryptionContext = Record<string, string>;

export const MAX_CONTEXT_ENTRIES = 32;
/**
 * `__proto__` is excluded: assigned to an ordinary object it sets the
 * prototype instead of a property, so a context carrying it would silently
 * lose that entry — and with it the binding to the ciphertext.
 */
export const CONTEXT_KEY_RE = /^(?!__proto__$)[A-Za-z0-9._:-]{1,64}$/;
export const MAX_CONTEXT_VALUE_BYTES = 256;
/** Key names on the wire: 1..128 bytes of printable ASCII (docs/FORMATS.md §3). */
export const MAX_KEY_NAME_BYTES = 128;
/** Key versions are u32 and start at 1. */
export const MAX_KEY_VERSION = 0xffff_ffff;

const AAD_LABEL = utf8("custos/aad/v1");
const PRINTABLE_ASCII_RE = /^[\x21-\x7e]+$/;

function entriesOf(ctx: unknown): [string, unknown][] {
  if (typeof ctx !== "object" || ctx === null || Array.isArray(ctx)) {
    throw new TypeError("context must be an object of string keys to string values");
  }
  const proto = Object.getPrototypeOf(ctx);
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError("context must be a plain object (a Map or class instance would read as empty)");
  }
  return Object.entries(ctx);
}

/** Checks every limit of §2; the error names the offending key and the limit. */
export function assertContext(ctx: unknown): asserts ctx is EncryptionContext {
  const entries = entriesOf(ctx);
  if (entries.length > MAX_CONTEXT_ENTRIES) {
    throw new RangeError(`context has ${entries.length} entries; at most ${MAX_CONTEXT_ENTRIES} are allowed`);
  }
  for (const [key, value] of entries) {
    if (!CONTEXT_KEY_RE.test(key)) {
      throw new RangeError(
        `context key ${JSON.stringify(key.slice(0, 80))} must match ${CONTEXT_KEY_RE.source}`,
      );
    }
    if (typeof value !== "string") throw new TypeError(`context value of '${key}' must be a string`);
    const length = utf8(value, `context value of '${key}'`).length;
    if (length > MAX_CONTEXT_VALUE_BYTES) {
      throw new RangeError(
        `context value of '${key}' is ${length} bytes; at most ${MAX_CONTEXT_VALUE_BYTES} UTF-8 bytes are allowed`,
      );
    }
  }
}

/**
 * canonical(ctx) = u32(count) ‖ for each (k, v) sorted by UTF-8 of k: u32(len k) ‖ k ‖ u32(len v) ‖ v
 *
 * Written into one buffer: this runs on every wrap and unwrap. Keys are ASCII
 * (CONTEXT_KEY_RE), so JavaScript's UTF-16 string order is their UTF-8 byte
 * order and a plain sort is the specified one.
 */
export function canonicalContext(ctx: EncryptionContext): Uint8Array {
  assertContext(ctx);
  const keys = Object.keys(ctx).sort();
  let size = 4;
  for (const k of keys) size += 8 + k.length + Buffer.byteLength(ctx[k]!, "utf8");
  const out = Buffer.alloc(size);
  let offset = out.writeUInt32BE(keys.length, 0);
  for (const k of keys) {
    const v = ctx[k]!;
    offset = out.writeUInt32BE(k.length, offset);
    offset += out.write(k, offset, "latin1");
    offset = out.writeUInt32BE(Buffer.byteLength(v, "utf8"), offset);
    offset += out.write(v, offset, "utf8");
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * The ASCII bytes of a key name as it appears on the wire: 1..128 printable
 * ASCII characters. Which names a user may create is the caller's rule
 * (KEY_NAME_RE in envelope.ts); this is only what the format can carry.
 */
export function keyNameBytes(keyName: string, what = "keyName"): Uint8Array {
  if (typeof keyName !== "string") throw new TypeError(`${what} must be a string`);
  if (keyName.length < 1 || keyName.length > MAX_KEY_NAME_BYTES || !PRINTABLE_ASCII_RE.test(keyName)) {
    throw new RangeError(`${what} must be 1..${MAX_KEY_NAME_BYTES} printable ASCII characters`);
  }
  return utf8(keyName, what);
}

/** aadHash = H("custos/aad/v1" ‖ canonical(ctx) ‖ u8(len name) ‖ name ‖ u32(version)) */
export function aadHash(ctx: EncryptionContext, keyName: string, keyVersion: number): Uint8Array {
  const canonical = canonicalContext(ctx);
  const name = keyNameBytes(keyName);
  aint(keyVersion, "keyVersion", 1, MAX_KEY_VERSION);
  const tail = Buffer.alloc(1 + name.length + 4);
  tail[0] = name.length;
  tail.set(name, 1);
  tail.writeUInt32BE(keyVersion, 1 + name.length);
  const digest = createHash("sha256").update(AAD_LABEL).update(canonical).update(tail).digest();
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}
