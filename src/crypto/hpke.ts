/**
 * HPKE (RFC 9180), mode base, with one fixed suite: DHKEM(X25519,
 * HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM (KEM 0x0020, KDF 0x0001, AEAD
 * 0x0002). It carries shares to custodians and from custodians to an unseal
 * ceremony (docs/FORMATS.md §5). The suite is fixed rather than negotiated: the
 * file formats name their version, and a new suite would be a new version.
 * The RFC machinery is @hpke/core's; this module only turns raw 32-byte keys
 * into its key objects, bounds the inputs, and collapses every failure to open
 * into one `HpkeOpenError` (a decapsulation error versus a tag error is no
 * business of the caller's). X25519 public keys are computed with
 * @noble/curves; a private key is 32 bytes from the CSPRNG, clamped at use as
 * RFC 7748 says. The library keeps private keys in its own objects: we wipe
 * that copy after each use as far as its API lets us reach it.
 */
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { x25519 } from "@noble/curves/ed25519.js";
import { abytes, randomBytes, zero } from "./bytes.js";
import { Secret } from "./secret.js";

export const HPKE_KEM_ID = 0x0020;
export const HPKE_KDF_ID = 0x0001;
export const HPKE_AEAD_ID = 0x0002;
export const X25519_KEY_BYTES = 32;
export const HPKE_ENC_BYTES = 32;
export const HPKE_TAG_BYTES = 16;
/** @hpke/core refuses longer `info`; ours are at most 97 bytes. */
export const MAX_INFO_BYTES = 8192;

/** The one error of hpkeOpen: the ciphertext does not open with this key, info and aad. */
export class HpkeOpenError extends Error {
  constructor() {
    super("HPKE ciphertext does not open with this key");
    this.name = "HpkeOpenError";
  }
}

/** A new suite object for DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM. */
export function createHpkeSuite(): CipherSuite {
  return new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
}

/** The suite's key object (the lib has no DOM types, so `CryptoKey` is named through the API). */
type SuiteKey = Awaited<ReturnType<CipherSuite["kem"]["deserializePrivateKey"]>>;

// Holds configuration only (algorithm objects, suite id), no keys, so one
// instance is shared by every call.
const suite = createHpkeSuite();

/** Best-effort wipe of the library's copy of a private key (its X25519 keys keep raw bytes in `key`). */
function wipeLibraryKey(key: SuiteKey): void {
  const raw: unknown = (key as unknown as { key?: unknown }).key;
  if (raw instanceof Uint8Array) raw.fill(0);
}

function checkInfoAndAad(info: Uint8Array, aad: Uint8Array): void {
  abytes(info, "info");
  abytes(aad, "aad");
  if (info.length > MAX_INFO_BYTES) throw new RangeError(`info must be at most ${MAX_INFO_BYTES} bytes`);
}

/** Seals `plaintext` to `recipientPublicKey` (raw 32 bytes), single shot, mode base. */
export async function hpkeSeal(
  recipientPublicKey: Uint8Array,
  plaintext: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
): Promise<{ enc: Uint8Array; ciphertext: Uint8Array }> {
  abytes(recipientPublicKey, "recipientPublicKey", X25519_KEY_BYTES);
  abytes(plaintext, "plaintext");
  checkInfoAndAad(info, aad);
  const pk = await suite.kem.deserializePublicKey(recipientPublicKey);
  // A low-order public key makes the DH output zero; @hpke/core refuses it (EncapError).
  const sealed = await suite.seal({ recipientPublicKey: pk, info }, plaintext, aad);
  return { enc: new Uint8Array(sealed.enc), ciphertext: new Uint8Array(sealed.ct) };
}

/** Opens a single-shot mode-base ciphertext; any failure is HpkeOpenError. */
export async function hpkeOpen(
  recipientPrivateKey: Secret,
  enc: Uint8Array,
  ciphertext: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
): Promise<Uint8Array> {
  if (!(recipientPrivateKey instanceof Secret)) throw new TypeError("recipientPrivateKey must be a Secret");
  if (recipientPrivateKey.length !== X25519_KEY_BYTES) {
    throw new RangeError(`recipientPrivateKey must be ${X25519_KEY_BYTES} bytes`);
  }
  abytes(enc, "enc");
  abytes(ciphertext, "ciphertext");
  checkInfoAndAad(info, aad);
  if (enc.length !== HPKE_ENC_BYTES || ciphertext.length < HPKE_TAG_BYTES) throw new HpkeOpenError();
  let sk: SuiteKey | undefined;
  try {
    sk = await suite.kem.deserializePrivateKey(recipientPrivateKey.reveal());
    const pt = await suite.open({ recipientKey: sk, enc, info }, ciphertext, aad);
    return new Uint8Array(pt);
  } catch {
    throw new HpkeOpenError();
  } finally {
    if (sk !== undefined) wipeLibraryKey(sk);
  }
}

const PROBE_SCALAR = new Uint8Array(32).fill(0x5a);

/**
 * False for a 32-byte string that is a low-order X25519 point (the DH output
 * with it is predictable, so nothing sealed to it is confidential). Readers of
 * public key files call this so the problem is named when the file is read,
 * not at the first seal.
 */
export function isUsableX25519PublicKey(publicKey: Uint8Array): boolean {
  abytes(publicKey, "publicKey");
  if (publicKey.length !== X25519_KEY_BYTES) return false;
  try {
    x25519.getSharedSecret(PROBE_SCALAR, publicKey);
    return true;
  } catch {
    return false;
  }
}

/** A new X25519 key pair from the CSPRNG. */
export function generateX25519KeyPair(): { publicKey: Uint8Array; privateKey: Secret } {
  const privateKey = Secret.of(randomBytes(X25519_KEY_BYTES));
  return { publicKey: x25519PublicKey(privateKey), privateKey };
}

/** The X25519 public key of a 32-byte private key. */
export function x25519PublicKey(privateKey: Secret): Uint8Array {
  if (!(privateKey instanceof Secret)) throw new TypeError("privateKey must be a Secret");
  if (privateKey.length !== X25519_KEY_BYTES)
    throw new RangeError(`privateKey must be ${X25519_KEY_BYTES} bytes`);
  const copy = Uint8Array.from(privateKey.reveal());
  try {
    return x25519.getPublicKey(copy);
  } finally {
    zero(copy);
  }
}
