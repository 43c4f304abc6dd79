/**
 * Custodian key files (docs/FORMATS.md §6): a custodian's X25519 HPKE key
 * pair, the public half shared with the operator (`alice.pub`) and the private
 * half kept by the custodian under a passphrase (`alice.key`). The private key
 * is sealed with AES-256-GCM under a scrypt-derived key, and the AAD binds the
 * custodian id and the public key, so neither can be swapped in the file. The
 * reader refuses KDF parameters outside N ∈ [2^15, 2^20], r = 8, p = 1: the
 * file is attacker-controlled input, and honouring a crafted N = 2 would turn
 * a passphrase guess into a microsecond. A wrong passphrase and a file whose
 * bytes were altered give the same `PrivateKeyOpenError` (GCM cannot tell
 * them apart, and neither should the message); a file of the wrong shape is a
 * FormatError naming the field, raised before any passphrase is asked for.
 * Public key files carry a fingerprint that readers recompute, so a key typed
 * or pasted wrong is caught. Writers store private key files with mode 0600
 * (PRIVATE_KEY_FILE_MODE); this module does no file I/O.
 */
import { createCipheriv, createDecipheriv, createHash, scrypt } from "node:crypto";
import {
  abytes,
  aint,
  b64u,
  concatBytes,
  constantTimeEqual,
  randomBytes,
  u8,
  utf8,
  zero,
} from "../crypto/bytes.js";
import { generateX25519KeyPair, isUsableX25519PublicKey, x25519PublicKey } from "../crypto/hpke.js";
import { Secret } from "../crypto/secret.js";
import {
  FormatError,
  readB64u,
  readInt,
  readLiteral,
  readMatch,
  readObject,
  readString,
} from "./format-error.js";

export const CUSTODIAN_ID_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const PUBLIC_KEY_FORMAT = "custos-custodian-public-key/v1";
export const PRIVATE_KEY_FORMAT = "custos-custodian-private-key/v1";
export const CUSTODIAN_KEM = "DHKEM-X25519-HKDF-SHA256";
export const PRIVATE_KEY_CIPHER = "AES-256-GCM";
export const SCRYPT_N_DEFAULT = 2 ** 17;
export const SCRYPT_N_MIN = 2 ** 15;
export const SCRYPT_N_MAX = 2 ** 20;
export const SCRYPT_R = 8;
export const SCRYPT_P = 1;
export const PRIVATE_KEY_FILE_MODE = 0o600;

const SALT_BYTES = 16;
const IV_BYTES = 12;
const KEY_BYTES = 32;
const TAG_BYTES = 16;
const AAD_LABEL = utf8("custos/custodian-key/v1");
const FINGERPRINT_RE = /^sha256:[A-Za-z0-9_-]{43}$/;

export interface CustodianPublicKeyFile {
  format: typeof PUBLIC_KEY_FORMAT;
  custodian: string;
  kem: typeof CUSTODIAN_KEM;
  /** b64u, 32 bytes. */
  publicKey: string;
  /** "sha256:" ‖ b64u(H(publicKey)). */
  fingerprint: string;
}

export interface CustodianPrivateKeyFile {
  format: typeof PRIVATE_KEY_FORMAT;
  custodian: string;
  kem: typeof CUSTODIAN_KEM;
  publicKey: string;
  kdf: { name: "scrypt"; N: number; r: number; p: number; salt: string };
  cipher: typeof PRIVATE_KEY_CIPHER;
  iv: string;
  /** b64u(encrypted 32-byte private key ‖ tag). */
  ciphertext: string;
}

/** A public key file after checking: the custodian and the decoded key. */
export interface CustodianPublicKey {
  custodian: string;
  publicKey: Uint8Array;
  fingerprint: string;
}

/** Wrong passphrase or altered file: deliberately one error with one message. */
export class PrivateKeyOpenError extends Error {
  constructor() {
    super("cannot open private key: wrong passphrase or corrupted file");
    this.name = "PrivateKeyOpenError";
  }
}

function assertCustodian(custodian: unknown, what = "custodian"): asserts custodian is string {
  if (typeof custodian !== "string") throw new TypeError(`${what} must be a string`);
  if (!CUSTODIAN_ID_RE.test(custodian)) throw new RangeError(`${what} must match ${CUSTODIAN_ID_RE.source}`);
}

/** "sha256:" ‖ b64u(SHA-256(publicKey)) */
export function fingerprint(publicKey: Uint8Array): string {
  abytes(publicKey, "publicKey", 32);
  return `sha256:${b64u.encode(createHash("sha256").update(publicKey).digest())}`;
}

/** The public key file for `publicKey`. */
export function publicKeyFile(custodian: string, publicKey: Uint8Array): CustodianPublicKeyFile {
  assertCustodian(custodian);
  abytes(publicKey, "publicKey", 32);
  return {
    format: PUBLIC_KEY_FORMAT,
    custodian,
    kem: CUSTODIAN_KEM,
    publicKey: b64u.encode(publicKey),
    fingerprint: fingerprint(publicKey),
  };
}

/** Strings are normalised to NFC so the same passphrase typed on two systems gives the same key. */
function passphraseBytes(passphrase: Uint8Array | string): Uint8Array {
  let bytes: Uint8Array;
  if (typeof passphrase === "string") {
    bytes = utf8(passphrase.normalize("NFC"), "passphrase");
  } else {
    abytes(passphrase, "passphrase");
    bytes = Uint8Array.from(passphrase);
  }
  if (bytes.length === 0) throw new RangeError("passphrase must not be empty");
  return bytes;
}

function deriveKek(passphrase: Uint8Array, salt: Uint8Array, N: number): Promise<Uint8Array> {
  // scrypt needs 128·N·r bytes for V plus 128·r·p for B; allow that and a margin.
  const maxmem = 128 * N * SCRYPT_R + 128 * SCRYPT_R * SCRYPT_P + 8 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(passphrase, salt, KEY_BYTES, { N, r: SCRYPT_R, p: SCRYPT_P, maxmem }, (err, key) => {
      if (err) return reject(err);
      const out = Uint8Array.from(key);
      key.fill(0);
      resolve(out);
    });
  });
}

function keyAad(custodian: string, publicKey: Uint8Array): Uint8Array {
  const c = utf8(custodian);
  return concatBytes(AAD_LABEL, u8(c.length), c, publicKey);
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** A new custodian key pair, the private half sealed under `passphrase`. */
export async function generateCustodianKey(
  custodian: string,
  passphrase: Uint8Array | string,
  opts: { scryptN?: number } = {},
): Promise<{ publicFile: CustodianPublicKeyFile; privateFile: CustodianPrivateKeyFile }> {
  assertCustodian(custodian);
  const N = opts.scryptN ?? SCRYPT_N_DEFAULT;
  aint(N, "scryptN", SCRYPT_N_MIN, SCRYPT_N_MAX);
  if (!isPowerOfTwo(N)) throw new RangeError("scryptN must be a power of two");
  const pass = passphraseBytes(passphrase);
  const { publicKey, privateKey } = generateX25519KeyPair();
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(IV_BYTES);
  let kek: Uint8Array | undefined;
  try {
    kek = await deriveKek(pass, salt, N);
    const cipher = createCipheriv("aes-256-gcm", kek, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(keyAad(custodian, publicKey));
    const ciphertext = concatBytes(cipher.update(privateKey.reveal()), cipher.final(), cipher.getAuthTag());
    return {
      publicFile: publicKeyFile(custodian, publicKey),
      privateFile: {
        format: PRIVATE_KEY_FORMAT,
        custodian,
        kem: CUSTODIAN_KEM,
        publicKey: b64u.encode(publicKey),
        kdf: { name: "scrypt", N, r: SCRYPT_R, p: SCRYPT_P, salt: b64u.encode(salt) },
        cipher: PRIVATE_KEY_CIPHER,
        iv: b64u.encode(iv),
        ciphertext: b64u.encode(ciphertext),
      },
    };
  } finally {
    zero(pass, kek);
    privateKey.dispose();
  }
}

/**
 * Reads a public key file. `defaultId` (the file's base name, `alice.pub` →
 * `alice`) is used when the file has no `custodian` field; a field that is
 * present wins. The fingerprint is recomputed and must match.
 */
export function parsePublicKeyFile(json: unknown, defaultId?: string): CustodianPublicKey {
  const obj = readObject(json, "", ["format", "custodian", "kem", "publicKey", "fingerprint"]);
  readLiteral(obj, "format", PUBLIC_KEY_FORMAT);
  let custodian: string;
  if (obj.custodian === undefined) {
    if (defaultId === undefined) throw new FormatError("custodian", "is missing and no default id was given");
    if (!CUSTODIAN_ID_RE.test(defaultId)) {
      throw new FormatError(
        "custodian",
        `is missing and the default id must match ${CUSTODIAN_ID_RE.source}`,
      );
    }
    custodian = defaultId;
  } else {
    custodian = readMatch(obj, "custodian", CUSTODIAN_ID_RE);
  }
  readLiteral(obj, "kem", CUSTODIAN_KEM);
  const publicKey = readB64u(obj, "publicKey", 32);
  if (!isUsableX25519PublicKey(publicKey)) throw new FormatError("publicKey", "is a low-order X25519 point");
  const claimed = readMatch(obj, "fingerprint", FINGERPRINT_RE);
  const actual = fingerprint(publicKey);
  if (claimed !== actual) {
    throw new FormatError(
      "fingerprint",
      `does not match the public key (file says ${claimed}, key is ${actual})`,
    );
  }
  return { custodian, publicKey, fingerprint: actual };
}

/** Reads a private key file's structure and refuses weak KDF parameters; does not decrypt. */
export function parsePrivateKeyFile(json: unknown): CustodianPrivateKeyFile {
  const obj = readObject(json, "", [
    "format",
    "custodian",
    "kem",
    "publicKey",
    "kdf",
    "cipher",
    "iv",
    "ciphertext",
  ]);
  readLiteral(obj, "format", PRIVATE_KEY_FORMAT);
  const custodian = readMatch(obj, "custodian", CUSTODIAN_ID_RE);
  readLiteral(obj, "kem", CUSTODIAN_KEM);
  readB64u(obj, "publicKey", 32);
  const kdf = readObject(obj.kdf, "kdf", ["name", "N", "r", "p", "salt"]);
  readLiteral(kdf, "name", "scrypt", "kdf.name");
  const N = readInt(kdf, "N", SCRYPT_N_MIN, SCRYPT_N_MAX, "kdf.N");
  if (!isPowerOfTwo(N)) throw new FormatError("kdf.N", "must be a power of two");
  const r = readInt(kdf, "r", SCRYPT_R, SCRYPT_R, "kdf.r");
  const p = readInt(kdf, "p", SCRYPT_P, SCRYPT_P, "kdf.p");
  readB64u(kdf, "salt", SALT_BYTES, "kdf.salt");
  readLiteral(obj, "cipher", PRIVATE_KEY_CIPHER);
  readB64u(obj, "iv", IV_BYTES);
  readB64u(obj, "ciphertext", KEY_BYTES + TAG_BYTES);
  return {
    format: PRIVATE_KEY_FORMAT,
    custodian,
    kem: CUSTODIAN_KEM,
    publicKey: readString(obj, "publicKey"),
    kdf: { name: "scrypt", N, r, p, salt: readString(kdf, "salt", "kdf.salt") },
    cipher: PRIVATE_KEY_CIPHER,
    iv: readString(obj, "iv"),
    ciphertext: readString(obj, "ciphertext"),
  };
}

/**
 * Decrypts the private key. Throws FormatError for a file of the wrong shape
 * or with weak KDF parameters, and PrivateKeyOpenError for a wrong passphrase,
 * altered bytes, or a private key that does not match the file's public key.
 */
export async function openPrivateKeyFile(
  file: CustodianPrivateKeyFile,
  passphrase: Uint8Array | string,
): Promise<Secret> {
  const checked = parsePrivateKeyFile(file);
  const pass = passphraseBytes(passphrase);
  const publicKey = b64u.decode(checked.publicKey, "publicKey");
  const sealed = b64u.decode(checked.ciphertext, "ciphertext");
  const salt = b64u.decode(checked.kdf.salt, "kdf.salt");
  const iv = b64u.decode(checked.iv, "iv");
  let kek: Uint8Array;
  try {
    // Outside the catch below: a scrypt failure (memory) is not a wrong passphrase.
    kek = await deriveKek(pass, salt, checked.kdf.N);
  } finally {
    zero(pass);
  }
  let plain: Buffer | undefined;
  let privateKey: Secret;
  try {
    const decipher = createDecipheriv("aes-256-gcm", kek, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(keyAad(checked.custodian, publicKey));
    decipher.setAuthTag(sealed.subarray(KEY_BYTES));
    plain = decipher.update(sealed.subarray(0, KEY_BYTES));
    decipher.final();
    privateKey = Secret.of(Uint8Array.from(plain));
  } catch {
    throw new PrivateKeyOpenError();
  } finally {
    zero(kek, plain);
  }
  if (!constantTimeEqual(x25519PublicKey(privateKey), publicKey)) {
    privateKey.dispose();
    throw new PrivateKeyOpenError();
  }
  return privateKey;
}
