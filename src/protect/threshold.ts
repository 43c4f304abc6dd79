/**
 * The THRESHOLD protection level's key handle. A threshold key has no `prf`:
 * its scalar exists nowhere, so "derive, then wrap" does not apply
 * (ARCHITECTURE, THRESHOLD row). The smallest seam that fits is this handle,
 * which the key ring caches like any other and which envelope-ops recognises
 * by type: `wrap` is local ECIES to the public key (format 2, no share node
 * needed), `unwrap` asks the share nodes for x·R through the coordinator and
 * opens. `prf` throws, so a threshold key that reached a format-1 code path
 * by mistake fails loudly instead of deriving from nothing.
 */
import type { EncryptionContext } from "../crypto/context.js";
import { CustosError } from "../errors.js";
import { type ThresholdCoordinator, ThresholdRoundError } from "../threshold/coordinator.js";
import type { ThresholdKey } from "../threshold/descriptor.js";
import { parseThresholdHeader, thresholdOpen, thresholdWrap } from "../threshold/ecies.js";
import { ThresholdUnavailableError } from "../threshold/unwrap.js";

/** A DKG or refresh round that failed, as the 503 the caller sees, naming the share nodes at fault. */
export function roundFailed(err: unknown): never {
  if (err instanceof ThresholdRoundError) {
    throw new CustosError(503, "threshold_unavailable", err.message, { nodes: err.nodes });
  }
  throw err;
}

export class ThresholdKeyHandle {
  constructor(
    readonly key: ThresholdKey,
    private readonly coordinator: ThresholdCoordinator,
  ) {}

  async prf(): Promise<Uint8Array> {
    throw new Error("a threshold key has no prf: use ThresholdKeyHandle.wrap/unwrap (format 2)");
  }

  wrap(plaintext: Uint8Array, context: EncryptionContext): Uint8Array {
    return thresholdWrap(this.key.publicKey, this.key.keyName, this.key.keyVersion, plaintext, context);
  }

  /**
   * Opens a format-2 blob. A blob that does not parse or authenticate throws
   * DecryptError; too few good share nodes is a 503 naming them (availability,
   * not a property of the ciphertext, so no oracle).
   */
  async unwrap(blob: Uint8Array, context: EncryptionContext): Promise<Uint8Array> {
    const header = parseThresholdHeader(blob);
    let shared: Awaited<ReturnType<ThresholdCoordinator["sharedPoint"]>>;
    try {
      shared = await this.coordinator.sharedPoint(this.key, header.ephemeral);
    } catch (err) {
      if (err instanceof ThresholdUnavailableError) {
        throw new CustosError(503, "threshold_unavailable", err.message, {
          unreachable: err.unreachable,
          badPartials: err.badPartials,
        });
      }
      throw err;
    }
    return thresholdOpen(blob, context, this.key.publicKey, shared);
  }

  dispose(): void {
    // Nothing secret is held: the descriptor is public.
  }

  toString(): string {
    return `ThresholdKeyHandle(${this.key.keyName}@${this.key.keyVersion})`;
  }
}
