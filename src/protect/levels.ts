/**
 * Which protection levels this node offers, and the one place where key bytes
 * become a `KeyHandle` at a level: SOFTWARE keeps them in process memory
 * behind a Secret; TPM hands them to the TPM (protect/tpm.ts) and zeroes them;
 * THRESHOLD material is a public descriptor (docs/FORMATS.md §11.2), made by a
 * distributed key generation among share nodes, and becomes a
 * ThresholdKeyHandle. A node with a TPM makes new keys at the TPM level
 * unless asked otherwise.
 */
import { type KeyHandle, SoftwareKeyHandle } from "../crypto/key-handle.js";
import { Secret } from "../crypto/secret.js";
import { CustosError } from "../errors.js";
import type { Protection } from "../store/store.js";
import type { ThresholdCoordinator } from "../threshold/coordinator.js";
import { type SetSpec, ThresholdKey } from "../threshold/descriptor.js";
import { roundFailed, ThresholdKeyHandle } from "./threshold.js";
import type { TpmKeys } from "./tpm.js";

export type DisposableKeyHandle = KeyHandle & { dispose(): void };

/** New key material, and what to do once it is durably stored (a threshold key's shares are committed). */
export interface NewMaterial {
  material: Secret;
  stored?: () => Promise<unknown>;
}

export class ProtectionLevels {
  constructor(
    readonly tpm: TpmKeys | null = null,
    readonly threshold: ThresholdCoordinator | null = null,
  ) {}

  /**
   * Material for a new version at `level`: 32 random bytes, or for THRESHOLD
   * a DKG among the share nodes of `specs` (the default: every configured
   * share node, a majority of them needed).
   */
  async newMaterial(
    level: Protection,
    name: string,
    version: number,
    specs?: SetSpec[],
  ): Promise<NewMaterial> {
    if (level !== "threshold") return { material: Secret.random(32) };
    const coordinator = this.#coordinator();
    const nodes = coordinator.nodeNames;
    const sets = specs ?? [{ name: "default", threshold: Math.floor(nodes.length / 2) + 1, nodes }];
    try {
      coordinator.checkSpecs(sets);
    } catch (err) {
      throw new CustosError(400, "invalid_threshold", (err as Error).message);
    }
    const key = await coordinator.generate(name, version, sets).catch(roundFailed);
    return { material: Secret.of(key.toBytes()), stored: () => coordinator.commit(key) };
  }

  #coordinator(): ThresholdCoordinator {
    if (!this.threshold) {
      throw new CustosError(
        400,
        "protection_unavailable",
        "this node has no share nodes (start the server with --share-node NAME=URL)",
      );
    }
    return this.threshold;
  }

  /** The level of new keys and of the root key on this node. */
  get preferred(): Protection {
    return this.tpm ? "tpm" : "software";
  }

  available(): Protection[] {
    const levels: Protection[] = this.tpm ? ["software", "tpm"] : ["software"];
    return this.threshold ? [...levels, "threshold"] : levels;
  }

  /** Refuses, with a 400 the caller can act on, a level this node does not have. */
  assertAvailable(level: Protection): void {
    if (level === "threshold") this.#coordinator();
    if (level === "tpm" && !this.tpm) {
      throw new CustosError(
        400,
        "protection_unavailable",
        "this node has no TPM (start the server with --tpm)",
      );
    }
  }

  /** Takes ownership of `material` (it is disposed whatever happens) and returns the key at `level`. */
  async load(level: Protection, material: Secret, name = "", version = 1): Promise<DisposableKeyHandle> {
    if (level === "software") return new SoftwareKeyHandle(material);
    if (level === "threshold") {
      try {
        return new ThresholdKeyHandle(
          ThresholdKey.fromBytes(name, version, material.reveal()),
          this.#coordinator(),
        );
      } finally {
        material.dispose();
      }
    }
    if (!this.tpm) {
      material.dispose();
      throw new CustosError(503, "tpm_unavailable", "this key is protected by a TPM and this node has none");
    }
    return this.tpm.importKey(material);
  }
}
