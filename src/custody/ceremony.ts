/**
 * One ceremony custodians send shares to (docs/FORMATS.md §5.3–§5.4): its
 * kind (an unseal, or a phase of a custody change), a nonce, an ephemeral
 * X25519 key pair that submissions are sealed to, the node's signature over
 * kind, init id, nonce, key and binding, and the shares accepted so far — by
 * custodian id for the flat form, by leaf path for a custody tree. The kind
 * is what keeps a share sent to one kind from counting toward another; a
 * custody change moves its ceremony from the quorum to the confirmation kind
 * (`advance`), which the node signs again, so the same key cannot be passed
 * off as the other phase either. It forgets everything on `dispose`, and
 * arms an idle timer so accepted shares never linger in memory unattended.
 * The seal's state machine (seal.ts) owns at most one unseal ceremony, the
 * custody change (custody-change.ts) one of its own.
 */
import { hex, randomBytes } from "../crypto/bytes.js";
import { generateX25519KeyPair } from "../crypto/hpke.js";
import type { Secret } from "../crypto/secret.js";
import type { CeremonyKind } from "./ceremony-kind.js";
import type { NodeIdentity } from "./node-identity.js";

export class Ceremony {
  readonly nonce: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly privateKey: Secret;
  readonly accepted = new Map<string, Secret>();
  expiresAt: number | null = null;
  #kind: CeremonyKind;
  #binding: Uint8Array;
  #signature: Uint8Array;
  #expiry: NodeJS.Timeout | null = null;

  constructor(
    private readonly identity: NodeIdentity,
    private readonly initId: string,
    kind: CeremonyKind = "unseal",
    binding: Uint8Array = new Uint8Array(0),
  ) {
    const { publicKey, privateKey } = generateX25519KeyPair();
    this.nonce = randomBytes(16);
    this.publicKey = publicKey;
    this.privateKey = privateKey;
    this.#kind = kind;
    this.#binding = binding;
    this.#signature = this.#sign();
  }

  get kind(): CeremonyKind {
    return this.#kind;
  }

  /** The node's signature over kind, init id, nonce, ceremony key and binding (§5.4). */
  get signature(): Uint8Array {
    return this.#signature;
  }

  /** A change's next phase: the same key and nonce, signed again for another kind and binding. */
  advance(kind: CeremonyKind, binding: Uint8Array): void {
    this.#kind = kind;
    this.#binding = binding;
    this.#signature = this.#sign();
  }

  /** (Re)arms the idle timer after a share was accepted. */
  arm(idleMs: number, onExpire: () => void): void {
    if (this.#expiry) clearTimeout(this.#expiry);
    this.expiresAt = Date.now() + idleMs;
    this.#expiry = setTimeout(onExpire, idleMs);
    this.#expiry.unref();
  }

  /** Wipes the accepted shares and the ceremony key. */
  dispose(): void {
    if (this.#expiry) clearTimeout(this.#expiry);
    for (const share of this.accepted.values()) share.dispose();
    this.accepted.clear();
    this.privateKey.dispose();
  }

  #sign(): Uint8Array {
    return this.identity.signCeremony({
      kind: this.#kind,
      initId: hex.decode(this.initId, "initId"),
      nonce: this.nonce,
      ceremonyPublicKey: this.publicKey,
      binding: this.#binding,
    });
  }
}
