/**
 * The flat form's ceremony submission, `custos-unseal/v3` (docs/FORMATS.md
 * §5.3): a custodian's share payload (share-format.ts), opened from their
 * share file and re-sealed to a ceremony's ephemeral key, bound by HPKE
 * `info` to the ceremony's kind and nonce and by `aad` to the custodian. The
 * kind is there so that a share a custodian sealed for an unseal cannot be
 * counted toward a rekey (or any other pairing of kinds): the node opens
 * with its own kind and nonce, never the ones a submission claims, so a
 * relabelled one does not open. The reader is strict (exact field set,
 * lengths) and throws FormatError naming the field.
 */
import { abytes, b64u, concatBytes, hex, u8, utf8, zero } from "../crypto/bytes.js";
import { HpkeOpenError, hpkeOpen, hpkeSeal, isUsableX25519PublicKey } from "../crypto/hpke.js";
import type { Secret } from "../crypto/secret.js";
import { CEREMONY_KINDS, type CeremonyKind } from "./ceremony-kind.js";
import { CUSTODIAN_ID_RE } from "./custodian-key.js";
import { FormatError, readB64u, readHex, readLiteral, readMatch, readObject } from "./format-error.js";
import {
  CEREMONY_NONCE_BYTES,
  decodeOrRefuse,
  encodeSharePayload,
  ShareOpenError,
  type SharePayload,
  sealedPayloadLength,
} from "./share-format.js";

export const UNSEAL_SUBMISSION_FORMAT = "custos-unseal/v3";
const UNSEAL_INFO_LABEL = utf8("custos/unseal/v3");

/** A share submitted to a ceremony (an unseal, or a phase of a custody change). */
export interface UnsealSubmission {
  format: typeof UNSEAL_SUBMISSION_FORMAT;
  /** The kind of ceremony the custodian sealed it for (docs/FORMATS.md §5.4). */
  ceremony: CeremonyKind;
  /** The ceremony nonce, 32 lowercase hex digits. */
  nonce: string;
  custodian: string;
  enc: string;
  ciphertext: string;
}

/** info = "custos/unseal/v3" ‖ u8(len kind) ‖ kind ‖ nonce(16) */
function unsealInfo(kind: CeremonyKind, nonce: Uint8Array): Uint8Array {
  const k = utf8(kind, "kind");
  return concatBytes(UNSEAL_INFO_LABEL, u8(k.length), k, nonce);
}

/** aad = u8(len c) ‖ c */
function unsealAad(custodian: string): Uint8Array {
  const c = utf8(custodian);
  return concatBytes(u8(c.length), c);
}

/** Re-seals an opened share to the ceremony key, bound to the ceremony's kind and nonce and the custodian. */
export async function makeUnsealSubmission(
  payload: SharePayload,
  kind: CeremonyKind,
  ceremonyNonce: Uint8Array,
  ceremonyPublicKey: Uint8Array,
): Promise<UnsealSubmission> {
  if (!CEREMONY_KINDS.includes(kind)) throw new RangeError("kind must be a ceremony kind");
  abytes(ceremonyNonce, "ceremonyNonce", CEREMONY_NONCE_BYTES);
  abytes(ceremonyPublicKey, "ceremonyPublicKey", 32);
  if (!isUsableX25519PublicKey(ceremonyPublicKey))
    throw new RangeError("ceremonyPublicKey is a low-order point");
  const plain = encodeSharePayload(payload);
  try {
    const { enc, ciphertext } = await hpkeSeal(
      ceremonyPublicKey,
      plain,
      unsealInfo(kind, ceremonyNonce),
      unsealAad(payload.holder),
    );
    return {
      format: UNSEAL_SUBMISSION_FORMAT,
      ceremony: kind,
      nonce: hex.encode(ceremonyNonce),
      custodian: payload.holder,
      enc: b64u.encode(enc),
      ciphertext: b64u.encode(ciphertext),
    };
  } finally {
    zero(plain);
  }
}

/** Checks every field of a submission (types, lengths, no extra fields). */
export function parseUnsealSubmission(json: unknown): UnsealSubmission {
  const obj = readObject(json, "", ["format", "ceremony", "nonce", "custodian", "enc", "ciphertext"]);
  readLiteral(obj, "format", UNSEAL_SUBMISSION_FORMAT);
  const ceremony = obj.ceremony as CeremonyKind;
  if (!CEREMONY_KINDS.includes(ceremony)) {
    throw new FormatError("ceremony", `must be one of ${CEREMONY_KINDS.join(", ")}`);
  }
  const nonce = hex.encode(readHex(obj, "nonce", CEREMONY_NONCE_BYTES));
  const custodian = readMatch(obj, "custodian", CUSTODIAN_ID_RE);
  const enc = readB64u(obj, "enc", 32);
  const ciphertext = readB64u(obj, "ciphertext", sealedPayloadLength(custodian));
  return {
    format: UNSEAL_SUBMISSION_FORMAT,
    ceremony,
    nonce,
    custodian,
    enc: b64u.encode(enc),
    ciphertext: b64u.encode(ciphertext),
  };
}

/**
 * Opens a submission with the ceremony's private key, kind and nonce. Checks
 * that it names this ceremony and its kind and that the payload's custodian
 * is the submitter; the init id and index are for the caller to compare with
 * the seal configuration.
 */
export async function openUnsealSubmission(
  sub: UnsealSubmission,
  ceremonyPrivateKey: Secret,
  nonce: Uint8Array,
  kind: CeremonyKind,
): Promise<SharePayload> {
  const checked = parseUnsealSubmission(sub);
  abytes(nonce, "nonce", CEREMONY_NONCE_BYTES);
  if (checked.ceremony !== kind) throw new ShareOpenError("wrong_kind");
  if (checked.nonce !== hex.encode(nonce)) throw new ShareOpenError("wrong_ceremony");
  let plain: Uint8Array;
  try {
    // Bound to the server's own kind and nonce, not the ones the submission claims.
    plain = await hpkeOpen(
      ceremonyPrivateKey,
      b64u.decode(checked.enc, "enc"),
      b64u.decode(checked.ciphertext, "ciphertext"),
      unsealInfo(kind, nonce),
      unsealAad(checked.custodian),
    );
  } catch (err) {
    if (err instanceof HpkeOpenError) throw new ShareOpenError("undecryptable");
    throw err;
  }
  const payload = decodeOrRefuse(plain);
  if (payload.holder !== checked.custodian) {
    payload.share.dispose();
    throw new ShareOpenError("payload_mismatch", `the share inside belongs to '${payload.holder}'`);
  }
  return payload;
}
