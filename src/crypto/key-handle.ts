/**
 * The one seam every protection level plugs into (ARCHITECTURE, "derive, then
 * wrap"): a key is something that computes `prf(x) = HMAC-SHA-256(K, x)`.
 * Wrapping derives a single-use key from it, so the long-lived key never
 * leaves its protection and the ciphertext format is the same whether `prf`
 * runs in process, in a TPM or in an HSM. `SoftwareKeyHandle` is the
 * in-process implementation (dev mode, tests, and a node's unsealed keys); it
 * uses node:crypto's HMAC because this is the hot path of every wrap and
 * unwrap. OpenSSL keeps its own copy of the key for the duration of each call,
 * which we cannot wipe; the Secret we hold is wiped on dispose().
 */
import { createHmac } from "node:crypto";
import { abytes } from "./bytes.js";
import { Secret } from "./secret.js";

/** Output length of `prf` in bytes. */
export const PRF_BYTES = 32;
/** Length of key material held behind a handle (docs/FORMATS.md §4). */
export const KEY_BYTES = 32;

export interface KeyHandle {
  /** HMAC-SHA-256 keyed by the key: 32 bytes. */
  prf(input: Uint8Array): Promise<Uint8Array>;
}

export class SoftwareKeyHandle implements KeyHandle {
  #key: Secret;

  /** Takes ownership of `key` (32 bytes): `dispose()` disposes it. */
  constructor(key: Secret) {
    if (!(key instanceof Secret)) throw new TypeError("key must be a Secret");
    if (key.length !== KEY_BYTES) throw new RangeError(`key must be ${KEY_BYTES} bytes, got ${key.length}`);
    this.#key = key;
  }

  async prf(input: Uint8Array): Promise<Uint8Array> {
    abytes(input, "input");
    const digest = createHmac("sha256", this.#key.reveal()).update(input).digest();
    const out = new Uint8Array(PRF_BYTES);
    out.set(digest);
    digest.fill(0);
    return out;
  }

  get disposed(): boolean {
    return this.#key.disposed;
  }

  dispose(): void {
    this.#key.dispose();
  }

  toString(): string {
    return "SoftwareKeyHandle";
  }
}
