/**
 * Which protection levels this node offers, and the one place where key bytes
 * become a `KeyHandle` at a level: SOFTWARE keeps them in process memory
 * behind a Secret; TPM hands them to the TPM (protect/tpm.ts) and zeroes them.
 * A node with a TPM makes new keys at the TPM level unless asked otherwise.
 */
import { type KeyHandle, SoftwareKeyHandle } from "../crypto/key-handle.js";
import type { Secret } from "../crypto/secret.js";
import { CustosError } from "../errors.js";
import type { Protection } from "../store/store.js";
import type { TpmKeys } from "./tpm.js";

export type DisposableKeyHandle = KeyHandle & { dispose(): void };

export class ProtectionLevels {
  constructor(readonly tpm: TpmKeys | null = null) {}

  /** The level of new keys and of the root key on this node. */
  get preferred(): Protection {
    return this.tpm ? "tpm" : "software";
  }

  available(): Protection[] {
    return this.tpm ? ["software", "tpm"] : ["software"];
  }

  /** Refuses, with a 400 the caller can act on, a level this node does not have. */
  assertAvailable(level: Protection): void {
    if (level === "tpm" && !this.tpm) {
      throw new CustosError(
        400,
        "protection_unavailable",
        "this node has no TPM (start the server with --tpm)",
      );
    }
  }

  /** Takes ownership of `material` (it is disposed whatever happens) and returns the key at `level`. */
  async load(level: Protection, material: Secret): Promise<DisposableKeyHandle> {
    if (level === "software") return new SoftwareKeyHandle(material);
    if (!this.tpm) {
      material.dispose();
      throw new CustosError(503, "tpm_unavailable", "this key is protected by a TPM and this node has none");
    }
    return this.tpm.importKey(material);
  }
}
