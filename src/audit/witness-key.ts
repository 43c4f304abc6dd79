/**
 * Witness key files (docs/FORMATS.md §8.3): an Ed25519 key pair with which a
 * witness countersigns the heads it has checked. A witness runs unattended,
 * so — like the node identity — its private key is not under a passphrase; it
 * is a mode-0600 file beside the witness's data, and the reader refuses a file
 * whose recorded public key is not the seed's (a swapped or half-edited file).
 * The public file, which nodes and auditors use to pin the witness, carries a
 * fingerprint that readers recompute, as custodian public keys do. Files are
 * parsed strictly with the custody readers, so a wrong field is named.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { b64u, constantTimeEqual } from "../crypto/bytes.js";
import { Secret } from "../crypto/secret.js";
import { fingerprint } from "../custody/custodian-key.js";
import { FormatError, readB64u, readLiteral, readMatch, readObject } from "../custody/format-error.js";
import { WITNESS_NAME_RE } from "./cosignature.js";

export const WITNESS_PRIVATE_FORMAT = "custos-witness-private-key/v1";
export const WITNESS_PUBLIC_FORMAT = "custos-witness-public-key/v1";
const FINGERPRINT_RE = /^sha256:[A-Za-z0-9_-]{43}$/;

export interface WitnessPublicKey {
  witness: string;
  publicKey: Uint8Array;
  fingerprint: string;
}

export interface WitnessKey extends WitnessPublicKey {
  secretKey: Secret;
}

export function generateWitnessKey(witness: string): WitnessKey {
  if (!WITNESS_NAME_RE.test(witness)) {
    throw new RangeError(`witness name '${witness}' must match ${WITNESS_NAME_RE.source}`);
  }
  const secretKey = Secret.of(ed25519.utils.randomSecretKey());
  const publicKey = ed25519.getPublicKey(secretKey.reveal());
  return { witness, publicKey, fingerprint: fingerprint(publicKey), secretKey };
}

export function publicWitnessFile(key: WitnessPublicKey): Record<string, string> {
  return {
    format: WITNESS_PUBLIC_FORMAT,
    witness: key.witness,
    publicKey: b64u.encode(key.publicKey),
    fingerprint: key.fingerprint,
  };
}

/** Writes NAME.key (0600) and NAME.pub; refuses to overwrite either. */
export function writeWitnessKeyFiles(
  out: string,
  key: WitnessKey,
): { privatePath: string; publicPath: string } {
  const privatePath = `${out}.key`;
  const publicPath = `${out}.pub`;
  // Both or neither: never a new private key beside an old public one.
  for (const p of [privatePath, publicPath]) {
    if (existsSync(p)) throw Object.assign(new Error(`${p} already exists`), { code: "EEXIST" });
  }
  const secret = b64u.encode(key.secretKey.reveal());
  const privateFile = {
    format: WITNESS_PRIVATE_FORMAT,
    witness: key.witness,
    secretKey: secret,
    publicKey: b64u.encode(key.publicKey),
  };
  writeFileSync(privatePath, `${JSON.stringify(privateFile, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  writeFileSync(publicPath, `${JSON.stringify(publicWitnessFile(key), null, 2)}\n`, {
    mode: 0o644,
    flag: "wx",
  });
  return { privatePath, publicPath };
}

export function parseWitnessPrivateKey(json: unknown): WitnessKey {
  const obj = readObject(json, "", ["format", "witness", "secretKey", "publicKey"]);
  readLiteral(obj, "format", WITNESS_PRIVATE_FORMAT);
  const witness = readMatch(obj, "witness", WITNESS_NAME_RE);
  const seed = readB64u(obj, "secretKey", 32);
  const claimed = readB64u(obj, "publicKey", 32);
  const secretKey = Secret.of(seed);
  const publicKey = ed25519.getPublicKey(secretKey.reveal());
  if (!constantTimeEqual(publicKey, claimed)) {
    secretKey.dispose();
    throw new FormatError("publicKey", "is not the public key of secretKey");
  }
  return { witness, publicKey, fingerprint: fingerprint(publicKey), secretKey };
}

export function parseWitnessPublicKey(json: unknown): WitnessPublicKey {
  const obj = readObject(json, "", ["format", "witness", "publicKey", "fingerprint"]);
  readLiteral(obj, "format", WITNESS_PUBLIC_FORMAT);
  const witness = readMatch(obj, "witness", WITNESS_NAME_RE);
  const publicKey = readB64u(obj, "publicKey", 32);
  const claimed = readMatch(obj, "fingerprint", FINGERPRINT_RE);
  if (claimed !== fingerprint(publicKey)) {
    throw new FormatError("fingerprint", "does not match the public key");
  }
  return { witness, publicKey, fingerprint: claimed };
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? "not JSON";
    throw new FormatError(basename(path), `cannot read ${what} '${path}' (${why})`);
  }
}

export function readWitnessPrivateKeyFile(path: string): WitnessKey {
  return parseWitnessPrivateKey(readJson(path, "witness private key file"));
}

export function readWitnessPublicKeyFile(path: string): WitnessPublicKey {
  return parseWitnessPublicKey(readJson(path, "witness public key file"));
}
