/**
 * One unseal ceremony (docs/FORMATS.md §5.3–§5.4): a nonce, an ephemeral
 * X25519 key pair that submissions are sealed to, the node's signature over
 * both, and the shares accepted so far — by custodian id for the flat form,
 * by leaf path for a custody tree. It forgets everything on `dispose`, and
 * arms an idle timer so accepted shares never linger in memory unattended.
 * The seal's state machine (seal.ts) owns at most one at a time.
 */
import { hex, randomBytes } from "../crypto/bytes.js";
import { generateX25519KeyPair } from "../crypto/hpke.js";
import type { Secret } from "../crypto/secret.js";
import type { NodeIdentity } from "./node-identity.js";

export class UnsealCeremony {
  readonly nonce: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly privateKey: Secret;
  /** The node's signature over init id, nonce and ceremony key. */
  readonly signature: Uint8Array;
  readonly accepted = new Map<string, Secret>();
  expiresAt: number | null = null;
  #expiry: NodeJS.Timeout | null = null;

  constructor(identity: NodeIdentity, initId: string) {
    const { publicKey, privateKey } = generateX25519KeyPair();
    this.nonce = randomBytes(16);
    this.publicKey = publicKey;
    this.privateKey = privateKey;
    this.signature = identity.signCeremony(hex.decode(initId, "initId"), this.nonce, publicKey);
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
}
