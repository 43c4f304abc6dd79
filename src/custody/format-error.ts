/**
 * The error every custody file reader throws for a file that does not have
 * the shape docs/FORMATS.md §5–§6 gives it, and the small field readers that
 * throw it. The error names the field (`kdf.N`, `ciphertext`, `format`) so an
 * operator can see what is wrong with a file without a debugger, and it is one
 * class so the CLI can turn any of them into "this file is not a valid …
 * file" with a single `instanceof`. Messages describe the shape, never the
 * content, so no secret material can end up in one. Readers are strict: a
 * field of the wrong type, an out-of-range number or an unknown extra field
 * is refused rather than ignored, because a file format that tolerates
 * surprises is a file format an attacker can smuggle things through.
 */
import { b64u, hex } from "../crypto/bytes.js";

export class FormatError extends Error {
  readonly field: string;

  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = "FormatError";
    this.field = field;
  }
}

export type JsonObject = Record<string, unknown>;

/** `value` as a JSON object whose keys are all in `allowed`; `field` is "" for the top level of a file. */
export function readObject(value: unknown, field: string, allowed: readonly string[]): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new FormatError(field === "" ? "(file)" : field, "must be a JSON object");
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key))
      throw new FormatError(field === "" ? key : `${field}.${key}`, "unknown field");
  }
  return value as JsonObject;
}

export function readString(obj: JsonObject, key: string, field = key): string {
  const value = obj[key];
  if (typeof value !== "string") throw new FormatError(field, "must be a string");
  return value;
}

export function readLiteral<T extends string>(obj: JsonObject, key: string, expected: T, field = key): T {
  const value = readString(obj, key, field);
  if (value !== expected) {
    throw new FormatError(field, `must be "${expected}", got ${JSON.stringify(value.slice(0, 64))}`);
  }
  return expected;
}

export function readInt(obj: JsonObject, key: string, min: number, max: number, field = key): number {
  const value = obj[key];
  if (typeof value !== "number" || !Number.isInteger(value))
    throw new FormatError(field, "must be an integer");
  if (value < min || value > max)
    throw new FormatError(field, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

export function readMatch(obj: JsonObject, key: string, re: RegExp, field = key): string {
  const value = readString(obj, key, field);
  if (!re.test(value)) throw new FormatError(field, `must match ${re.source}`);
  return value;
}

/** A b64u field, decoded and checked to be exactly `length` bytes (or within [min, max]). */
export function readB64u(
  obj: JsonObject,
  key: string,
  length: number | [number, number],
  field = key,
): Uint8Array {
  const text = readString(obj, key, field);
  let bytes: Uint8Array;
  try {
    bytes = b64u.decode(text, field);
  } catch {
    throw new FormatError(field, "must be unpadded base64url");
  }
  const [min, max] = typeof length === "number" ? [length, length] : length;
  if (bytes.length < min || bytes.length > max) {
    throw new FormatError(field, min === max ? `must be ${min} bytes` : `must be ${min}..${max} bytes`);
  }
  return bytes;
}

/** A lowercase hex field of exactly `length` bytes. */
export function readHex(obj: JsonObject, key: string, length: number, field = key): Uint8Array {
  const text = readString(obj, key, field);
  if (text.length !== 2 * length) throw new FormatError(field, `must be ${2 * length} lowercase hex digits`);
  try {
    return hex.decode(text, field);
  } catch {
    throw new FormatError(field, `must be ${2 * length} lowercase hex digits`);
  }
}
