/**
 * A share node's own keys, in its data directory (mode 0600): an Ed25519
 * identity key that signs its dealings (and that custos nodes bind into the
 * requests they sign to it), and an X25519 key that other share nodes encrypt
 * their DKG shares to. Both are made on first start and published by
 * `GET /v1/threshold/info`; operators compare the fingerprints printed at
 * start with those a custos node records for its keys (docs/FORMATS.md §11.2).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { b64u } from "../crypto/bytes.js";
import { generateX25519KeyPair, x25519PublicKey } from "../crypto/hpke.js";
import { Secret } from "../crypto/secret.js";
import type { RequestSigner } from "../threshold/request-auth.js";
import { writeFileAtomic } from "./atomic-file.js";

export const SHARE_NODE_KEYS_FILE = "share-node-keys.json";
const FORMAT = "custos-share-node-keys/v1";

export class ShareNodeKeys implements RequestSigner {
  readonly publicKey: Uint8Array;
  readonly hpkePublicKey: Uint8Array;

  private constructor(
    readonly signingKey: Secret,
    readonly hpkePrivateKey: Secret,
  ) {
    this.publicKey = ed25519.getPublicKey(signingKey.reveal());
    this.hpkePublicKey = x25519PublicKey(hpkePrivateKey);
  }

  static loadOrCreate(dataDir: string): ShareNodeKeys {
    const path = join(dataDir, SHARE_NODE_KEYS_FILE);
    if (!existsSync(path)) {
      const signing = Secret.of(ed25519.utils.randomSecretKey());
      const hpke = generateX25519KeyPair().privateKey;
      writeFileAtomic(
        path,
        `${JSON.stringify({ format: FORMAT, identity: b64u.encode(signing.reveal()), hpke: b64u.encode(hpke.reveal()) })}\n`,
      );
      return new ShareNodeKeys(signing, hpke);
    }
    const parsed = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    if (parsed.format !== FORMAT || typeof parsed.identity !== "string" || typeof parsed.hpke !== "string") {
      throw new Error(`${path} is not a ${FORMAT} file`);
    }
    const identity = b64u.decode(parsed.identity, "identity");
    const hpke = b64u.decode(parsed.hpke, "hpke");
    if (identity.length !== 32 || hpke.length !== 32) throw new Error(`${path}: keys must be 32 bytes`);
    return new ShareNodeKeys(Secret.of(identity), Secret.of(hpke));
  }

  sign(message: Uint8Array): Uint8Array {
    return ed25519.sign(message, this.signingKey.reveal());
  }

  dispose(): void {
    this.signingKey.dispose();
    this.hpkePrivateKey.dispose();
  }

  toString(): string {
    return `ShareNodeKeys(${b64u.encode(this.publicKey)})`;
  }
}
