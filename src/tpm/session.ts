/**
 * Authorization sessions as the caller keeps them (Part 1 §19): the handle,
 * the TPM's latest nonce, the session key and whether the policy asked for
 * the object's authValue. Sessions custos starts are always salted (the salt
 * is sent encrypted to a TPM key, so the session key never crosses the bus)
 * and always carry AES-128-CFB, so any command with a secret in its first
 * parameter can encrypt it. The session key lives here only, is never
 * printed, and is wiped when the session ends.
 */
import { concatBytes } from "../crypto/bytes.js";
import type { SymDef } from "./structures.js";

export type SessionType = "hmac" | "policy" | "trial";

export class AuthSession {
  readonly handle: number;
  readonly type: SessionType;
  readonly symmetric: SymDef | null;
  /** The TPM's nonce from its last response in this session (nonceTPM). */
  nonceTPM: Uint8Array;
  /** Set by PolicyAuthValue: the object's authValue then joins the HMAC key (Part 1 §19.6.11). */
  authValueNeeded = false;
  #sessionKey: Uint8Array;
  #closed = false;

  constructor(
    handle: number,
    type: SessionType,
    nonceTPM: Uint8Array,
    sessionKey: Uint8Array,
    symmetric: SymDef | null,
  ) {
    this.handle = handle;
    this.type = type;
    this.nonceTPM = nonceTPM;
    this.#sessionKey = sessionKey;
    this.symmetric = symmetric;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The HMAC key for this use: sessionKey ‖ authValue when the entity's
   * authValue is included (an unbound HMAC session, or a policy session after
   * PolicyAuthValue), sessionKey alone otherwise.
   */
  hmacKey(authValue: Uint8Array | null): Uint8Array {
    this.#assertOpen();
    const include = authValue !== null && (this.type === "hmac" || this.authValueNeeded);
    return include ? concatBytes(this.#sessionKey, stripTrailingZeros(authValue)) : this.#sessionKey.slice();
  }

  /** The key of parameter encryption: sessionKey ‖ authValue of the authorized entity, if the session authorizes one (Part 1 §21.1). */
  cipherKey(authValue: Uint8Array | null): Uint8Array {
    this.#assertOpen();
    return authValue === null
      ? this.#sessionKey.slice()
      : concatBytes(this.#sessionKey, stripTrailingZeros(authValue));
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`TPM session 0x${this.handle.toString(16)} is closed`);
  }

  /** Forget the key; the TPM side is flushed by the caller (FlushContext) or ended by continueSession=0. */
  close(): void {
    this.#sessionKey.fill(0);
    this.#closed = true;
  }

  toString(): string {
    return `AuthSession(${this.type}, 0x${this.handle.toString(16)})`;
  }
}

/** The TPM drops an authValue's trailing zero bytes before using it in an HMAC or KDF key (Part 1 §19.6.4.3). */
export function stripTrailingZeros(b: Uint8Array): Uint8Array {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end);
}
