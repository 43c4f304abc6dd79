/**
 * The node's identity: an Ed25519 key that lets custodians tell the real node
 * from an impostor before they send a share. The public half is written into
 * every share file at init (bound into the file's HPKE encryption, so it
 * cannot be swapped); the node signs each ceremony's kind, nonce and key —
 * and for a custody change the new tree's digest — with the private half; the
 * CLI checks that signature, for the kind of ceremony it is about to seal
 * for, against the key in the custodian's own share file and refuses to send
 * the share otherwise. Without
 * it, whoever answers at CUSTOS_ADDR (a wrong address, a spoofed DNS name, an
 * on-path proxy) could publish its own ceremony key and collect shares in the
 * clear.
 *
 * The key must work while the node is sealed, so it cannot be sealed under the
 * root key: it lives in the data directory (mode 0600) next to the store, and
 * belongs in the same backups. Someone who holds a copy of the data directory
 * can impersonate this node to custodians — but could equally run custos on
 * that copy and hold a real ceremony; the shares stay the custodians' to give.
 * Strict Ed25519 verification (RFC 8032, not ZIP-215) is used.
 */
import { createPrivateKey, hkdfSync, type KeyObject, sign as signWithKey } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { abytes, b64u, concatBytes, u8, utf8, zero } from "../crypto/bytes.js";
import { Secret } from "../crypto/secret.js";
import { bindingLength, type CeremonyKind } from "./ceremony-kind.js";

export const NODE_IDENTITY_FILE = "node-identity.key";
const FORMAT = "custos-node-identity/v1";
const CEREMONY_LABEL = utf8("custos/ceremony/v2");
/** PKCS#8 prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** What the node signs for one ceremony (docs/FORMATS.md §5.4). */
export interface CeremonyStatement {
  kind: CeremonyKind;
  /** The node's current init id, 16 bytes. */
  initId: Uint8Array;
  nonce: Uint8Array;
  ceremonyPublicKey: Uint8Array;
  /** Empty for an unseal; the new tree's digest for a change (and the new init id when confirming). */
  binding: Uint8Array;
}

/** "custos/ceremony/v2" ‖ u8(len kind) ‖ kind ‖ initId(16) ‖ nonce(16) ‖ ceremonyPublicKey(32) ‖ binding */
export function ceremonyMessage(s: CeremonyStatement): Uint8Array {
  abytes(s.initId, "initId", 16);
  abytes(s.nonce, "nonce", 16);
  abytes(s.ceremonyPublicKey, "ceremonyPublicKey", 32);
  abytes(s.binding, "binding", bindingLength(s.kind));
  const kind = utf8(s.kind, "kind");
  return concatBytes(
    CEREMONY_LABEL,
    u8(kind.length),
    kind,
    s.initId,
    s.nonce,
    s.ceremonyPublicKey,
    s.binding,
  );
}

/** Strict RFC 8032 verification; false for anything malformed, never a throw. */
export function verifyCeremony(
  nodePublicKey: Uint8Array,
  signature: Uint8Array,
  statement: CeremonyStatement,
): boolean {
  try {
    return ed25519.verify(signature, ceremonyMessage(statement), nodePublicKey, { zip215: false });
  } catch {
    return false;
  }
}

export class NodeIdentity {
  readonly publicKey: Uint8Array;
  #secretKey: Secret;
  #requestKey: KeyObject | undefined;

  private constructor(secretKey: Secret) {
    this.#secretKey = secretKey;
    this.publicKey = ed25519.getPublicKey(secretKey.reveal());
  }

  static generate(): NodeIdentity {
    return new NodeIdentity(Secret.of(ed25519.utils.randomSecretKey()));
  }

  /**
   * Loads the identity of the node in `dataDir`, or makes one for a node that
   * is not initialised yet. An initialised node without its identity file
   * cannot prove itself to custodians, so that is an error, not a new key.
   */
  static loadOrCreate(dataDir: string, initialized: boolean): NodeIdentity {
    const path = join(dataDir, NODE_IDENTITY_FILE);
    if (!existsSync(path)) {
      if (initialized) {
        throw new Error(
          `${path} is missing: this node was initialised with it, and custodians' share files name its key; ` +
            "restore it from the backup of this data directory",
        );
      }
      const identity = NodeIdentity.generate();
      const secret = b64u.encode(identity.#secretKey.reveal());
      writeFileSync(path, `${JSON.stringify({ format: FORMAT, secretKey: secret })}\n`, {
        mode: 0o600,
        flag: "wx",
      });
      return identity;
    }
    const parsed = JSON.parse(readFileSync(path, "utf8")) as { format?: unknown; secretKey?: unknown };
    if (parsed.format !== FORMAT || typeof parsed.secretKey !== "string") {
      throw new Error(`${path} is not a ${FORMAT} file`);
    }
    const bytes = b64u.decode(parsed.secretKey, "secretKey");
    if (bytes.length !== 32) {
      zero(bytes);
      throw new Error(`${path}: secretKey must be 32 bytes`);
    }
    return new NodeIdentity(Secret.of(bytes));
  }

  signCeremony(statement: CeremonyStatement): Uint8Array {
    return ed25519.sign(ceremonyMessage(statement), this.#secretKey.reveal());
  }

  /**
   * Signs a request to a share node (threshold/request-auth.ts). Only
   * messages under that label are signed here, so this cannot be made to sign
   * a ceremony message or anything else.
   */
  signShareRequest(message: Uint8Array): Uint8Array {
    const label = utf8("custos/share-request/v1");
    if (message.length < label.length || !label.every((b, i) => message[i] === b)) {
      throw new RangeError("not a share-node request message");
    }
    // node:crypto rather than @noble: three of these per threshold unwrap, 10x faster.
    // OpenSSL keeps its own copy of the key in the KeyObject, as for HMAC keys (README).
    if (this.#requestKey === undefined) {
      const der = Buffer.concat([ED25519_PKCS8_PREFIX, this.#secretKey.reveal()]);
      try {
        this.#requestKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
      } finally {
        der.fill(0);
      }
    }
    return new Uint8Array(signWithKey(null, message, this.#requestKey));
  }

  /**
   * An X25519 private key derived from the identity seed for one purpose
   * (HKDF-SHA256, info = `label`): the repository key of docs/FORMATS.md §5.8
   * is `deriveX25519("custos/repository-key/v1")`. Derived rather than stored
   * so it needs no second file to back up, and domain-separated so the
   * signing key is never used for anything but signing.
   */
  deriveX25519(label: string): Secret {
    const out = new Uint8Array(hkdfSync("sha256", this.#secretKey.reveal(), new Uint8Array(0), label, 32));
    return Secret.of(out);
  }

  dispose(): void {
    this.#requestKey = undefined;
    this.#secretKey.dispose();
  }

  toString(): string {
    return `NodeIdentity(${b64u.encode(this.publicKey)})`;
  }
}
