/**
 * A witness's countersignature on a node's signed tree head (docs/FORMATS.md
 * §8.3). The message is domain-separated from the node's own head signature
 * ("custos/cosign/v1" against "custos/sth/v1") so neither can stand in for the
 * other, and it names the log by the node's audit public key, so a
 * countersignature for one hospital's log says nothing about another's. It
 * covers the head's size, timestamp and root and the witness's own clock.
 * Verification is strict RFC 8032 (@noble/curves, no ZIP-215), as for heads.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { abytes, b64u, concatBytes, hex, u64be, utf8 } from "../crypto/bytes.js";
import type { Secret } from "../crypto/secret.js";
import { readB64u, readHex, readInt, readMatch, readObject } from "../custody/format-error.js";

/** Witness names, as custodian ids (docs/FORMATS.md §8.3). */
export const WITNESS_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const FIELDS = [
  "witness",
  "witnessKey",
  "log",
  "size",
  "rootHash",
  "timestamp",
  "cosignedAt",
  "signature",
] as const;

const COSIGN_LABEL = utf8("custos/cosign/v1");

/** One countersignature; `witness` is a human label, the identity is `witnessKey`. */
export interface Cosignature {
  witness: string;
  /** Ed25519 public key of the witness. */
  witnessKey: Uint8Array;
  /** The node's audit public key: the log's identity. */
  log: Uint8Array;
  size: number;
  root: Uint8Array;
  /** The head's timestamp (ms). */
  timestamp: number;
  /** The witness's clock when it signed (ms). */
  cosignedAt: number;
  signature: Uint8Array;
}

export type CosignedFields = Omit<Cosignature, "witness" | "witnessKey" | "signature">;

/** label ‖ logKey(32) ‖ u64(size) ‖ u64(timestamp) ‖ root(32) ‖ u64(cosignedAt). */
export function cosignMessage(c: CosignedFields): Uint8Array {
  abytes(c.log, "log", 32);
  abytes(c.root, "root", 32);
  return concatBytes(COSIGN_LABEL, c.log, u64be(c.size), u64be(c.timestamp), c.root, u64be(c.cosignedAt));
}

export function cosign(key: Secret, witness: string, fields: CosignedFields): Cosignature {
  const signature = ed25519.sign(cosignMessage(fields), key.reveal());
  return { witness, witnessKey: ed25519.getPublicKey(key.reveal()), ...fields, signature };
}

/** True only for a well-formed countersignature that verifies under its own `witnessKey`. */
export function verifyCosignature(c: Cosignature): boolean {
  try {
    return ed25519.verify(c.signature, cosignMessage(c), c.witnessKey, { zip215: false });
  } catch {
    return false;
  }
}

export interface CosignatureJson {
  witness: string;
  witnessKey: string;
  log: string;
  size: number;
  rootHash: string;
  timestamp: number;
  cosignedAt: number;
  signature: string;
}

export function cosignatureToJson(c: Cosignature): CosignatureJson {
  return {
    witness: c.witness,
    witnessKey: b64u.encode(c.witnessKey),
    log: b64u.encode(c.log),
    size: c.size,
    rootHash: hex.encode(c.root),
    timestamp: c.timestamp,
    cosignedAt: c.cosignedAt,
    signature: b64u.encode(c.signature),
  };
}

/** Parses a countersignature from JSON, strictly (FormatError naming the field); does not verify it. */
export function cosignatureFromJson(json: unknown, what = "cosignature"): Cosignature {
  const f = (k: string) => `${what}.${k}`;
  const obj = readObject(json, what, FIELDS);
  return {
    witness: readMatch(obj, "witness", WITNESS_NAME_RE, f("witness")),
    witnessKey: readB64u(obj, "witnessKey", 32, f("witnessKey")),
    log: readB64u(obj, "log", 32, f("log")),
    size: readInt(obj, "size", 1, Number.MAX_SAFE_INTEGER, f("size")),
    root: readHex(obj, "rootHash", 32, f("rootHash")),
    timestamp: readInt(obj, "timestamp", 0, Number.MAX_SAFE_INTEGER, f("timestamp")),
    cosignedAt: readInt(obj, "cosignedAt", 0, Number.MAX_SAFE_INTEGER, f("cosignedAt")),
    signature: readB64u(obj, "signature", 64, f("signature")),
  };
}
