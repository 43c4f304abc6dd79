/**
 * How a share node knows which custos node is asking (docs/FORMATS.md §11.4):
 * every request carries an Ed25519 signature by the custos node's identity key
 * (custody/node-identity.ts) over the method, path, a timestamp, a random
 * nonce, the hash of the body and the share node's own identity key. Signed
 * requests rather than mutual TLS because the identity key already exists and
 * is already what custodians trust, because no certificate authority has to be
 * run between hospitals, because a signature survives TLS-terminating proxies,
 * and because the share node can write the exact signed request into its audit
 * log as evidence of who asked. Replay: the timestamp must be within
 * ±MAX_SKEW_MS of the share node's clock and a nonce is accepted once within
 * that window (the cache forgets nonces older than the window, which the
 * timestamp check then refuses anyway). Binding the share node's key stops a
 * request captured at one share node from being replayed at another.
 * Verification runs in node:crypto (OpenSSL's RFC 8032 Ed25519): it is on the
 * path of every partial, and @noble's verify measured 10x slower here.
 */
import { createHash, createPublicKey, type KeyObject, verify as verifySignature } from "node:crypto";
import { b64u, concatBytes, constantTimeEqual, hex, randomBytes, u8, u64be, utf8 } from "../crypto/bytes.js";

export const REQUEST_LABEL = utf8("custos/share-request/v1");
export const MAX_SKEW_MS = 60_000;
export const HEADER_NODE = "x-custos-node";
export const HEADER_TIME = "x-custos-timestamp";
export const HEADER_NONCE = "x-custos-nonce";
export const HEADER_SIGNATURE = "x-custos-signature";

export interface RequestSigner {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

/** The signed bytes: label ‖ len-prefixed method, path, share node key ‖ u64(time) ‖ nonce(16) ‖ H(body). */
export function requestMessage(
  method: string,
  path: string,
  shareNodeKey: Uint8Array,
  timestamp: number,
  nonce: Uint8Array,
  body: Uint8Array,
): Uint8Array {
  const m = utf8(method.toUpperCase());
  const p = utf8(path);
  if (p.length > 255) throw new RangeError("path must be at most 255 bytes");
  const bodyHash = createHash("sha256").update(body).digest();
  return concatBytes(
    REQUEST_LABEL,
    u8(m.length),
    m,
    u8(p.length),
    p,
    shareNodeKey,
    u64be(timestamp),
    nonce,
    new Uint8Array(bodyHash),
  );
}

/** Headers for one request from `signer` to the share node whose identity key is `shareNodeKey`. */
export function signRequest(
  signer: RequestSigner,
  method: string,
  path: string,
  shareNodeKey: Uint8Array,
  body: Uint8Array,
  now = Date.now(),
): Record<string, string> {
  const nonce = randomBytes(16);
  const sig = signer.sign(requestMessage(method, path, shareNodeKey, now, nonce, body));
  return {
    [HEADER_NODE]: b64u.encode(signer.publicKey),
    [HEADER_TIME]: String(now),
    [HEADER_NONCE]: hex.encode(nonce),
    [HEADER_SIGNATURE]: b64u.encode(sig),
  };
}

export type AuthFailure = "missing" | "malformed" | "unknown_node" | "stale" | "replayed" | "bad_signature";

/** Verifies signed requests for one share node; holds the nonces seen within the window. */
/** SubjectPublicKeyInfo prefix of an Ed25519 key (RFC 8410): the raw 32 bytes follow. */
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

export class RequestVerifier {
  #seen = new Map<string, number>();
  readonly #allowed: { raw: Uint8Array; key: KeyObject }[];

  constructor(
    private readonly selfKey: Uint8Array,
    allowed: readonly Uint8Array[],
    private readonly clock: () => number = Date.now,
  ) {
    this.#allowed = allowed.map((raw) => ({
      raw,
      key: createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: "der", type: "spki" }),
    }));
  }

  /**
   * What can be checked before the body is read: the headers are there and
   * well formed, the node is allowed, the timestamp is fresh. A share node
   * runs this first so that it never reads a stranger's body (issue 10,
   * finding 6); `verify` runs it again with the signature.
   */
  precheck(headers: (name: string) => string | undefined): { ok: true } | { ok: false; reason: AuthFailure } {
    const parsed = this.#parse(headers);
    return "reason" in parsed ? { ok: false, reason: parsed.reason } : { ok: true };
  }

  /** The requesting node's key (b64u) when the request is good, else why not. */
  verify(
    method: string,
    path: string,
    headers: (name: string) => string | undefined,
    body: Uint8Array,
  ): { ok: true; node: string } | { ok: false; reason: AuthFailure } {
    const parsed = this.#parse(headers);
    if ("reason" in parsed) return { ok: false, reason: parsed.reason };
    const { nodeText, nonceText, nonce, sig, time, key, now } = parsed;
    let good = false;
    try {
      good = verifySignature(null, requestMessage(method, path, this.selfKey, time, nonce, body), key, sig);
    } catch {
      good = false;
    }
    if (!good) return { ok: false, reason: "bad_signature" };
    // Only a correctly signed request may occupy the nonce cache.
    this.#forget(now);
    if (this.#seen.has(nonceText)) return { ok: false, reason: "replayed" };
    this.#seen.set(nonceText, time);
    return { ok: true, node: nodeText };
  }

  #parse(headers: (name: string) => string | undefined):
    | { reason: AuthFailure }
    | {
        nodeText: string;
        nonceText: string;
        nonce: Uint8Array;
        sig: Uint8Array;
        time: number;
        key: KeyObject;
        now: number;
      } {
    const nodeText = headers(HEADER_NODE);
    const timeText = headers(HEADER_TIME);
    const nonceText = headers(HEADER_NONCE);
    const sigText = headers(HEADER_SIGNATURE);
    if (!nodeText || !timeText || !nonceText || !sigText) return { reason: "missing" };
    let node: Uint8Array;
    let nonce: Uint8Array;
    let sig: Uint8Array;
    try {
      node = b64u.decode(nodeText, "node");
      nonce = hex.decode(nonceText, "nonce");
      sig = b64u.decode(sigText, "signature");
    } catch {
      return { reason: "malformed" };
    }
    if (!/^[0-9]{1,15}$/.test(timeText) || node.length !== 32 || nonce.length !== 16 || sig.length !== 64) {
      return { reason: "malformed" };
    }
    const allowed = this.#allowed.find((k) => constantTimeEqual(k.raw, node));
    if (!allowed) return { reason: "unknown_node" };
    const time = Number(timeText);
    const now = this.clock();
    if (Math.abs(now - time) > MAX_SKEW_MS) return { reason: "stale" };
    return { nodeText, nonceText, nonce, sig, time, key: allowed.key, now };
  }

  #forget(now: number): void {
    if (this.#seen.size < 1024) return;
    for (const [nonce, time] of this.#seen) if (Math.abs(now - time) > MAX_SKEW_MS) this.#seen.delete(nonce);
  }
}
