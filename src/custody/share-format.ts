/**
 * A share's two journeys (docs/FORMATS.md §5.2–§5.3). At init each share is
 * HPKE-sealed to its custodian's public key in a share file; at unseal the
 * custodian's CLI opens it and re-seals the same payload to the ceremony's
 * ephemeral key as a submission (flat-submission.ts; the share file and the
 * payload both are here). Both are bound by HPKE `info`/`aad` to what
 * they claim to be — the share file to (init id, index, custodian), the
 * submission to (ceremony kind, nonce, custodian) — so a file relabelled with
 * other values, or a submission replayed into another ceremony or passed off
 * as one for another kind of ceremony, does not open. The
 * payload repeats init id, index and custodian inside the ciphertext, and
 * opening checks them against the labels too: the binding is then checked
 * twice, once by the AEAD and once by us. Readers are strict (exact field set,
 * exact lengths) and throw FormatError naming the field; failures to open are
 * ShareOpenError with a reason the server maps to its refusal codes. Payload
 * bytes contain the share, so they are wiped as soon as they are sealed or
 * decoded, and the share itself only ever leaves here inside a Secret.
 */
import { abytes, aint, b64u, concatBytes, hex, u8, utf8, zero } from "../crypto/bytes.js";
import {
  HpkeOpenError,
  hpkeOpen,
  hpkeSeal,
  isUsableX25519PublicKey,
  x25519PublicKey,
} from "../crypto/hpke.js";
import { Secret } from "../crypto/secret.js";
import {
  COMMITMENT_BYTES,
  INIT_ID_BYTES,
  MAX_SHARES,
  MIN_THRESHOLD,
  SHARE_BYTES,
  verifyShareCommitment,
} from "../crypto/shamir.js";
import { CUSTODIAN_ID_RE, fingerprint } from "./custodian-key.js";
import {
  FormatError,
  readB64u,
  readHex,
  readInt,
  readLiteral,
  readMatch,
  readObject,
} from "./format-error.js";

export const SHARE_FILE_FORMAT = "custos-share/v1";
export const SHARE_PAYLOAD_VERSION = 0x01;
export const CEREMONY_NONCE_BYTES = 16;

const SHARE_INFO_LABEL = utf8("custos/share/v1");
const HPKE_TAG_BYTES = 16;
const FINGERPRINT_RE = /^sha256:[A-Za-z0-9_-]{43}$/;
// u8(version) ‖ initId(16) ‖ u8(i) ‖ u8(len c) ‖ c ‖ share(33)
const PAYLOAD_FIXED_BYTES = 1 + INIT_ID_BYTES + 1 + 1 + SHARE_BYTES;

/** What a share file or a submission carries. */
export interface SharePayload {
  initId: Uint8Array;
  index: number;
  holder: string;
  /** 33 bytes. */
  share: Secret;
}

/** A custodian's share file, as stored (`alice.share`). */
export interface ShareFile {
  format: typeof SHARE_FILE_FORMAT;
  /** 32 lowercase hex digits. */
  initId: string;
  custodian: string;
  index: number;
  threshold: number;
  shares: number;
  /** "sha256:" ‖ b64u(H(custodian's X25519 public key)). */
  recipient: string;
  /** b64u(commit_i). */
  commitment: string;
  /** The node's Ed25519 identity key, b64u (32 bytes): who may ask for this share. Bound as the HPKE aad. */
  node: string;
  /** b64u(HPKE enc), 32 bytes. */
  enc: string;
  /** b64u(HPKE ciphertext of the payload). */
  ciphertext: string;
}

export type ShareOpenFailure =
  | "wrong_recipient"
  | "wrong_ceremony"
  | "wrong_kind"
  | "undecryptable"
  | "payload_mismatch";

const OPEN_FAILURE_TEXT: Record<ShareOpenFailure, string> = {
  wrong_recipient: "the share file is encrypted to another key",
  wrong_ceremony: "the submission was made for another unseal ceremony",
  wrong_kind: "the submission was sealed for another kind of ceremony",
  undecryptable:
    "it does not open with this key (altered, or relabelled with another custodian, index, init id or ceremony)",
  payload_mismatch: "the share inside does not match the labels or the commitment outside",
};

export class ShareOpenError extends Error {
  readonly reason: ShareOpenFailure;

  constructor(reason: ShareOpenFailure, detail?: string) {
    super(detail === undefined ? OPEN_FAILURE_TEXT[reason] : `${OPEN_FAILURE_TEXT[reason]}: ${detail}`);
    this.name = "ShareOpenError";
    this.reason = reason;
  }
}

function assertCustodian(custodian: unknown, what: string): asserts custodian is string {
  if (typeof custodian !== "string") throw new TypeError(`${what} must be a string`);
  if (!CUSTODIAN_ID_RE.test(custodian)) throw new RangeError(`${what} must match ${CUSTODIAN_ID_RE.source}`);
}

/** payload = u8(0x01) ‖ initId(16) ‖ u8(i) ‖ u8(len c) ‖ c ‖ share(33). Holds the share: zero it after use. */
export function encodeSharePayload(payload: SharePayload): Uint8Array {
  abytes(payload.initId, "payload.initId", INIT_ID_BYTES);
  aint(payload.index, "payload.index", 1, MAX_SHARES);
  assertCustodian(payload.holder, "payload.holder");
  if (!(payload.share instanceof Secret)) throw new TypeError("payload.share must be a Secret");
  if (payload.share.length !== SHARE_BYTES)
    throw new RangeError(`payload.share must be ${SHARE_BYTES} bytes`);
  const c = utf8(payload.holder);
  return concatBytes(
    u8(SHARE_PAYLOAD_VERSION),
    payload.initId,
    u8(payload.index),
    u8(c.length),
    c,
    payload.share.reveal(),
  );
}

/** Inverse of encodeSharePayload; the share is copied into a new Secret, `bytes` is left to the caller. */
export function decodeSharePayload(bytes: Uint8Array): SharePayload {
  abytes(bytes, "bytes");
  if (bytes.length < 1) throw new FormatError("payload", "is empty");
  if (bytes[0] !== SHARE_PAYLOAD_VERSION)
    throw new FormatError("payload.version", `unsupported version ${bytes[0]}`);
  if (bytes.length < PAYLOAD_FIXED_BYTES + 1) throw new FormatError("payload", "is too short");
  const initId = bytes.slice(1, 1 + INIT_ID_BYTES);
  const index = bytes[1 + INIT_ID_BYTES]!;
  if (index < 1 || index > MAX_SHARES) throw new FormatError("payload.index", `must be 1..${MAX_SHARES}`);
  const holderLength = bytes[2 + INIT_ID_BYTES]!;
  if (bytes.length !== PAYLOAD_FIXED_BYTES + holderLength)
    throw new FormatError("payload", "has the wrong length");
  const holderStart = 3 + INIT_ID_BYTES;
  const holder = Buffer.from(bytes.subarray(holderStart, holderStart + holderLength)).toString("latin1");
  if (!CUSTODIAN_ID_RE.test(holder))
    throw new FormatError("payload.holder", `must match ${CUSTODIAN_ID_RE.source}`);
  const share = Secret.of(bytes.slice(holderStart + holderLength));
  return { initId, index, holder, share };
}

/** info = "custos/share/v1" ‖ initId(16) ‖ u8(i) ‖ u8(len c) ‖ c */
function shareInfo(initId: Uint8Array, index: number, custodian: string): Uint8Array {
  const c = utf8(custodian);
  return concatBytes(SHARE_INFO_LABEL, initId, u8(index), u8(c.length), c);
}

/** HPKE ciphertext length of a payload for `custodian`. */
export function sealedPayloadLength(custodian: string): number {
  return PAYLOAD_FIXED_BYTES + custodian.length + HPKE_TAG_BYTES;
}

export interface SealShareFileArgs {
  initId: Uint8Array;
  index: number;
  holder: string;
  threshold: number;
  shares: number;
  recipientPublicKey: Uint8Array;
  /** 33 bytes. */
  share: Secret;
  commitment: Uint8Array;
  /** The node's Ed25519 public key (node-identity.ts). */
  nodePublicKey: Uint8Array;
}

/** Seals one share to its custodian. Checks the commitment first, so a mixed-up pair never ships. */
export async function sealShareFile(args: SealShareFileArgs): Promise<ShareFile> {
  const { initId, index, holder, threshold, shares, recipientPublicKey, share, commitment, nodePublicKey } =
    args;
  abytes(nodePublicKey, "nodePublicKey", 32);
  abytes(initId, "initId", INIT_ID_BYTES);
  aint(shares, "shares", MIN_THRESHOLD, MAX_SHARES);
  aint(threshold, "threshold", MIN_THRESHOLD, shares);
  aint(index, "index", 1, shares);
  assertCustodian(holder, "holder");
  abytes(recipientPublicKey, "recipientPublicKey", 32);
  if (!isUsableX25519PublicKey(recipientPublicKey))
    throw new RangeError("recipientPublicKey is a low-order point");
  abytes(commitment, "commitment", COMMITMENT_BYTES);
  if (!(share instanceof Secret)) throw new TypeError("share must be a Secret");
  if (!verifyShareCommitment(initId, index, holder, share.reveal(), commitment)) {
    throw new RangeError(`commitment does not match the share of '${holder}' (index ${index})`);
  }
  const payload = encodeSharePayload({ initId, index, holder, share });
  try {
    const { enc, ciphertext } = await hpkeSeal(
      recipientPublicKey,
      payload,
      shareInfo(initId, index, holder),
      nodePublicKey,
    );
    return {
      format: SHARE_FILE_FORMAT,
      initId: hex.encode(initId),
      custodian: holder,
      index,
      threshold,
      shares,
      recipient: fingerprint(recipientPublicKey),
      commitment: b64u.encode(commitment),
      node: b64u.encode(nodePublicKey),
      enc: b64u.encode(enc),
      ciphertext: b64u.encode(ciphertext),
    };
  } finally {
    zero(payload);
  }
}

/** Checks every field of a share file (types, ranges, lengths, no extra fields). */
export function parseShareFile(json: unknown): ShareFile {
  const obj = readObject(json, "", [
    "format",
    "initId",
    "custodian",
    "index",
    "threshold",
    "shares",
    "recipient",
    "commitment",
    "node",
    "enc",
    "ciphertext",
  ]);
  readLiteral(obj, "format", SHARE_FILE_FORMAT);
  const initId = hex.encode(readHex(obj, "initId", INIT_ID_BYTES));
  const custodian = readMatch(obj, "custodian", CUSTODIAN_ID_RE);
  const shares = readInt(obj, "shares", MIN_THRESHOLD, MAX_SHARES);
  const threshold = readInt(obj, "threshold", MIN_THRESHOLD, shares);
  const index = readInt(obj, "index", 1, shares);
  const recipient = readMatch(obj, "recipient", FINGERPRINT_RE);
  readB64u({ digest: recipient.slice("sha256:".length) }, "digest", 32, "recipient");
  const commitment = readB64u(obj, "commitment", COMMITMENT_BYTES);
  const node = readB64u(obj, "node", 32);
  const enc = readB64u(obj, "enc", 32);
  const ciphertext = readB64u(obj, "ciphertext", sealedPayloadLength(custodian));
  return {
    format: SHARE_FILE_FORMAT,
    initId,
    custodian,
    index,
    threshold,
    shares,
    recipient,
    commitment: b64u.encode(commitment),
    node: b64u.encode(node),
    enc: b64u.encode(enc),
    ciphertext: b64u.encode(ciphertext),
  };
}

/** Opens a share file with the custodian's private key and checks the payload against the labels. */
export async function openShareFile(file: ShareFile, privateKey: Secret): Promise<SharePayload> {
  const checked = parseShareFile(file);
  const mine = fingerprint(x25519PublicKey(privateKey));
  if (mine !== checked.recipient) {
    throw new ShareOpenError("wrong_recipient", `file is for ${checked.recipient}, this key is ${mine}`);
  }
  const initId = hex.decode(checked.initId, "initId");
  let plain: Uint8Array;
  try {
    plain = await hpkeOpen(
      privateKey,
      b64u.decode(checked.enc, "enc"),
      b64u.decode(checked.ciphertext, "ciphertext"),
      shareInfo(initId, checked.index, checked.custodian),
      b64u.decode(checked.node, "node"),
    );
  } catch (err) {
    if (err instanceof HpkeOpenError) throw new ShareOpenError("undecryptable");
    throw err;
  }
  const payload = decodeOrRefuse(plain);
  const commitment = b64u.decode(checked.commitment, "commitment");
  const consistent =
    hex.encode(payload.initId) === checked.initId &&
    payload.index === checked.index &&
    payload.holder === checked.custodian &&
    verifyShareCommitment(payload.initId, payload.index, payload.holder, payload.share.reveal(), commitment);
  if (!consistent) {
    payload.share.dispose();
    throw new ShareOpenError("payload_mismatch");
  }
  return payload;
}

/** Decodes an opened payload and wipes `plain`; a malformed one is ShareOpenError `payload_mismatch`. */
export function decodeOrRefuse(plain: Uint8Array): SharePayload {
  try {
    return decodeSharePayload(plain);
  } catch (err) {
    if (err instanceof FormatError) throw new ShareOpenError("payload_mismatch", err.message);
    throw err;
  } finally {
    zero(plain);
  }
}
