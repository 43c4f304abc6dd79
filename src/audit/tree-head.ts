/**
 * Signed tree heads (docs/FORMATS.md §8.1): the node's Ed25519 audit signing
 * key vouches for (size, root, time) of the Merkle log over its audit events.
 * A head is what witnesses countersign and what `custos audit verify` checks
 * the events against; two validly signed heads for one size with different
 * roots are proof that the log was forked. Signing and verification use
 * @noble/curves with strict RFC 8032 verification.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { b64u, concatBytes, hex, u64be, utf8 } from "../crypto/bytes.js";
import type { Secret } from "../crypto/secret.js";
import type { TreeHeadRecord } from "../store/store.js";

const STH_LABEL = utf8("custos/sth/v1");

/** The bytes a head's signature covers: label ‖ u64(size) ‖ u64(timestamp ms) ‖ root(32). */
export function treeHeadMessage(size: number, timestamp: number, root: Uint8Array): Uint8Array {
  return concatBytes(STH_LABEL, u64be(size), u64be(timestamp), root);
}

export function signTreeHead(key: Secret, size: number, timestamp: number, root: Uint8Array): TreeHeadRecord {
  const signature = ed25519.sign(treeHeadMessage(size, timestamp, root), key.reveal());
  return { size, root, timestamp, signature };
}

export function verifyTreeHead(publicKey: Uint8Array, head: TreeHeadRecord): boolean {
  try {
    return ed25519.verify(head.signature, treeHeadMessage(head.size, head.timestamp, head.root), publicKey, {
      zip215: false,
    });
  } catch {
    return false;
  }
}

export function auditPublicKey(key: Secret): Uint8Array {
  return ed25519.getPublicKey(key.reveal());
}

/** The JSON form served at GET /v1/audit/head. */
export interface TreeHeadJson {
  size: number;
  /** Hex, as RFC 9162 tooling prints roots. */
  rootHash: string;
  timestamp: number;
  /** b64u Ed25519 signature over treeHeadMessage. */
  signature: string;
  /** b64u Ed25519 public key of the node's audit signing key. */
  publicKey: string;
}

export function treeHeadToJson(head: TreeHeadRecord, publicKey: Uint8Array): TreeHeadJson {
  return {
    size: head.size,
    rootHash: hex.encode(head.root),
    timestamp: head.timestamp,
    signature: b64u.encode(head.signature),
    publicKey: b64u.encode(publicKey),
  };
}

/** Parses a served head; throws RangeError naming the field on anything malformed. */
export function treeHeadFromJson(json: TreeHeadJson): { head: TreeHeadRecord; publicKey: Uint8Array } {
  if (!Number.isSafeInteger(json.size) || json.size < 1)
    throw new RangeError("head.size must be a positive integer");
  if (!Number.isSafeInteger(json.timestamp) || json.timestamp < 0)
    throw new RangeError("head.timestamp is not valid");
  const root = hex.decode(json.rootHash, "head.rootHash");
  const signature = b64u.decode(json.signature, "head.signature");
  const publicKey = b64u.decode(json.publicKey, "head.publicKey");
  if (root.length !== 32 || signature.length !== 64 || publicKey.length !== 32) {
    throw new RangeError("head has a root, signature or public key of the wrong length");
  }
  return { head: { size: json.size, root, timestamp: json.timestamp, signature }, publicKey };
}
