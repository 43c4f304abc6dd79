/**
 * Codecs for the TPM 2.0 structures custos sends and receives (Part 2 §10–12),
 * one pair of functions per structure, named after it. Only the variants we
 * use are supported — keyed-hash and ECC objects, AES-CFB symmetric
 * definitions, SHA-256 — and anything else is refused by name rather than
 * half-parsed. Object names (Part 1 §16) are computed here too, so the client
 * can check that what the TPM says it loaded is what we asked for.
 */
import { concatBytes, u32be } from "../crypto/bytes.js";
import { LIMITS, TPM_ALG, TPM_ECC } from "./constants.js";
import { sha256 } from "./kdf.js";
import { marshal, TpmFormatError, TpmReader, type TpmWriter } from "./marshal.js";

const ALG_NAMES: Record<number, string> = Object.fromEntries(Object.entries(TPM_ALG).map(([k, v]) => [v, k]));

function algName(alg: number): string {
  return ALG_NAMES[alg] ?? `0x${alg.toString(16).padStart(4, "0")}`;
}

function expectAlg(r: TpmReader, what: string, allowed: readonly number[]): number {
  const alg = r.u16(what);
  if (!allowed.includes(alg)) throw new TpmFormatError(`${what}: algorithm ${algName(alg)} is not supported`);
  return alg;
}

// ---- TPMT_SYM_DEF / TPMT_SYM_DEF_OBJECT (Part 2 §11.1.6–7): AES-CFB or NULL ----

export interface SymDef {
  algorithm: typeof TPM_ALG.AES;
  keyBits: 128 | 256;
  mode: typeof TPM_ALG.CFB;
}

export const AES128_CFB: SymDef = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };

export function writeSymDef(w: TpmWriter, s: SymDef | null): void {
  if (!s) {
    w.u16(TPM_ALG.NULL);
    return;
  }
  w.u16(s.algorithm).u16(s.keyBits).u16(s.mode);
}

export function readSymDef(r: TpmReader, what: string): SymDef | null {
  const alg = expectAlg(r, `${what}.algorithm`, [TPM_ALG.AES, TPM_ALG.NULL]);
  if (alg === TPM_ALG.NULL) return null;
  const keyBits = r.u16(`${what}.keyBits`);
  if (keyBits !== 128 && keyBits !== 256)
    throw new TpmFormatError(`${what}.keyBits: ${keyBits} is not supported`);
  expectAlg(r, `${what}.mode`, [TPM_ALG.CFB]);
  return { algorithm: TPM_ALG.AES, keyBits, mode: TPM_ALG.CFB };
}

// ---- TPMT_PUBLIC (Part 2 §12.2.4) ----

interface PublicCommon {
  nameAlg: typeof TPM_ALG.SHA256;
  objectAttributes: number;
  authPolicy: Uint8Array;
}

export interface KeyedHashPublic extends PublicCommon {
  type: "keyedhash";
  /** TPMT_KEYEDHASH_SCHEME: HMAC-SHA-256 for signing (HMAC) keys, NULL for sealed data. */
  scheme: "hmac-sha256" | "null";
  /** TPM2B_DIGEST unique: empty in templates, the TPM fills it in. */
  unique: Uint8Array;
}

export interface EccPublic extends PublicCommon {
  type: "ecc";
  symmetric: SymDef | null;
  /** TPMT_ECC_SCHEME: NULL for storage keys (the only kind custos makes). */
  scheme: "null";
  curveId: typeof TPM_ECC.NIST_P256;
  /** TPMT_KDF_SCHEME: NULL. */
  kdf: "null";
  unique: { x: Uint8Array; y: Uint8Array };
}

export type TpmtPublic = KeyedHashPublic | EccPublic;

export function writePublic(w: TpmWriter, p: TpmtPublic): void {
  w.u16(p.type === "keyedhash" ? TPM_ALG.KEYEDHASH : TPM_ALG.ECC)
    .u16(p.nameAlg)
    .u32(p.objectAttributes >>> 0)
    .tpm2b(p.authPolicy, LIMITS.digest, "authPolicy");
  if (p.type === "keyedhash") {
    if (p.scheme === "hmac-sha256") w.u16(TPM_ALG.HMAC).u16(TPM_ALG.SHA256);
    else w.u16(TPM_ALG.NULL);
    w.tpm2b(p.unique, LIMITS.digest, "unique");
    return;
  }
  writeSymDef(w, p.symmetric);
  w.u16(TPM_ALG.NULL) // scheme
    .u16(p.curveId)
    .u16(TPM_ALG.NULL) // kdf
    .tpm2b(p.unique.x, LIMITS.eccParameter, "unique.x")
    .tpm2b(p.unique.y, LIMITS.eccParameter, "unique.y");
}

export function readPublic(r: TpmReader, what = "TPMT_PUBLIC"): TpmtPublic {
  const type = expectAlg(r, `${what}.type`, [TPM_ALG.KEYEDHASH, TPM_ALG.ECC]);
  const nameAlg = expectAlg(r, `${what}.nameAlg`, [TPM_ALG.SHA256]) as typeof TPM_ALG.SHA256;
  const objectAttributes = r.u32(`${what}.objectAttributes`);
  const authPolicy = r.tpm2b(LIMITS.digest, `${what}.authPolicy`);
  if (type === TPM_ALG.KEYEDHASH) {
    const scheme = expectAlg(r, `${what}.scheme`, [TPM_ALG.HMAC, TPM_ALG.NULL]);
    if (scheme === TPM_ALG.HMAC) expectAlg(r, `${what}.scheme.hashAlg`, [TPM_ALG.SHA256]);
    const unique = r.tpm2b(LIMITS.digest, `${what}.unique`);
    return {
      type: "keyedhash",
      nameAlg,
      objectAttributes,
      authPolicy,
      scheme: scheme === TPM_ALG.HMAC ? "hmac-sha256" : "null",
      unique,
    };
  }
  const symmetric = readSymDef(r, `${what}.symmetric`);
  expectAlg(r, `${what}.scheme`, [TPM_ALG.NULL]);
  const curve = r.u16(`${what}.curveID`);
  if (curve !== TPM_ECC.NIST_P256)
    throw new TpmFormatError(`${what}.curveID: curve 0x${curve.toString(16)} is not supported`);
  expectAlg(r, `${what}.kdf`, [TPM_ALG.NULL]);
  const x = r.tpm2b(LIMITS.eccParameter, `${what}.unique.x`);
  const y = r.tpm2b(LIMITS.eccParameter, `${what}.unique.y`);
  return {
    type: "ecc",
    nameAlg,
    objectAttributes,
    authPolicy,
    symmetric,
    scheme: "null",
    curveId: TPM_ECC.NIST_P256,
    kdf: "null",
    unique: { x, y },
  };
}

/** TPM2B_PUBLIC: the marshaled TPMT_PUBLIC behind a size. */
export function marshalPublic(p: TpmtPublic): Uint8Array {
  return marshal((w) => writePublic(w, p));
}

export function writePublic2b(w: TpmWriter, p: TpmtPublic): void {
  w.tpm2b(marshalPublic(p), LIMITS.public, "TPM2B_PUBLIC");
}

/** Reads a TPM2B_PUBLIC; returns the structure and its exact bytes (the name is the hash of those bytes). */
export function readPublic2b(r: TpmReader, what = "TPM2B_PUBLIC"): { pub: TpmtPublic; bytes: Uint8Array } {
  const bytes = r.tpm2b(LIMITS.public, what);
  if (bytes.length === 0) throw new TpmFormatError(`${what}: empty`);
  const inner = new TpmReader(bytes);
  const pub = readPublic(inner, what);
  inner.done(what);
  return { pub, bytes };
}

/** The name of an object: nameAlg ‖ H(TPMT_PUBLIC) (Part 1 §16). */
export function objectName(publicBytes: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(TPM_ALG.SHA256 >>> 8, TPM_ALG.SHA256 & 0xff), sha256(publicBytes));
}

/** The name of a permanent, PCR or session handle: the handle itself. */
export function handleName(handle: number): Uint8Array {
  return u32be(handle);
}

// ---- TPM2B_SENSITIVE_CREATE (Part 2 §11.1.15–16) ----

export interface SensitiveCreate {
  userAuth: Uint8Array;
  data: Uint8Array;
}

/** sizeof(TPMS_SENSITIVE_CREATE): two TPM2Bs at their limits. */
const SENSITIVE_CREATE_MAX = 2 + LIMITS.digest + 2 + LIMITS.sensitiveData;

export function marshalSensitiveCreate(s: SensitiveCreate): Uint8Array {
  const inner = marshal((w) => {
    w.tpm2b(s.userAuth, LIMITS.digest, "userAuth").tpm2b(s.data, LIMITS.sensitiveData, "data");
  });
  return marshal((w) => w.tpm2b(inner, SENSITIVE_CREATE_MAX, "TPM2B_SENSITIVE_CREATE"));
}

export function readSensitiveCreate(r: TpmReader): SensitiveCreate {
  const size = r.u16("TPM2B_SENSITIVE_CREATE.size");
  if (size > SENSITIVE_CREATE_MAX)
    throw new TpmFormatError(
      `TPM2B_SENSITIVE_CREATE: size ${size} exceeds its limit of ${SENSITIVE_CREATE_MAX}`,
    );
  const inner = r.sub(size, "TPM2B_SENSITIVE_CREATE");
  const userAuth = inner.tpm2b(LIMITS.digest, "userAuth");
  const data = inner.tpm2b(LIMITS.sensitiveData, "data");
  inner.done("TPM2B_SENSITIVE_CREATE");
  return { userAuth, data };
}

// ---- TPMT_SENSITIVE (Part 2 §12.3.2.4): for keyed-hash objects ----

export interface KeyedHashSensitive {
  authValue: Uint8Array;
  seedValue: Uint8Array;
  bits: Uint8Array;
}

export function writeSensitive(w: TpmWriter, s: KeyedHashSensitive): void {
  w.u16(TPM_ALG.KEYEDHASH)
    .tpm2b(s.authValue, LIMITS.digest, "authValue")
    .tpm2b(s.seedValue, LIMITS.digest, "seedValue")
    .tpm2b(s.bits, LIMITS.sensitiveData, "sensitive.bits");
}

export function readSensitive(r: TpmReader): KeyedHashSensitive {
  expectAlg(r, "TPMT_SENSITIVE.sensitiveType", [TPM_ALG.KEYEDHASH]);
  return {
    authValue: r.tpm2b(LIMITS.digest, "authValue"),
    seedValue: r.tpm2b(LIMITS.digest, "seedValue"),
    bits: r.tpm2b(LIMITS.sensitiveData, "sensitive.bits"),
  };
}

// ---- TPML_PCR_SELECTION (Part 2 §10.9.7) ----

export interface PcrSelection {
  hash: typeof TPM_ALG.SHA256 | typeof TPM_ALG.SHA1;
  pcrs: number[];
}

const PCR_SELECT_BYTES = 3;

export function writePcrSelections(w: TpmWriter, selections: PcrSelection[]): void {
  w.u32(selections.length);
  for (const s of selections) {
    const select = new Uint8Array(PCR_SELECT_BYTES);
    for (const pcr of s.pcrs) {
      if (!Number.isInteger(pcr) || pcr < 0 || pcr >= PCR_SELECT_BYTES * 8)
        throw new RangeError(`PCR index ${pcr} is out of range 0..23`);
      select[pcr >> 3] = (select[pcr >> 3] as number) | (1 << (pcr & 7));
    }
    w.u16(s.hash).u8(PCR_SELECT_BYTES).bytes(select);
  }
}

export function readPcrSelections(r: TpmReader, what = "TPML_PCR_SELECTION"): PcrSelection[] {
  const count = r.u32(`${what}.count`);
  if (count > LIMITS.listEntries)
    throw new TpmFormatError(`${what}.count: ${count} exceeds ${LIMITS.listEntries}`);
  const out: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hash = expectAlg(r, `${what}[${i}].hash`, [TPM_ALG.SHA256, TPM_ALG.SHA1]) as PcrSelection["hash"];
    const size = r.u8(`${what}[${i}].sizeofSelect`);
    if (size > LIMITS.pcrSelectBytes)
      throw new TpmFormatError(`${what}[${i}].sizeofSelect: ${size} exceeds ${LIMITS.pcrSelectBytes}`);
    const select = r.bytes(size, `${what}[${i}].pcrSelect`);
    const pcrs: number[] = [];
    for (let bit = 0; bit < size * 8; bit++)
      if ((select[bit >> 3] as number) & (1 << (bit & 7))) pcrs.push(bit);
    out.push({ hash, pcrs });
  }
  return out;
}

// ---- TPML_DIGEST (Part 2 §10.9.2) and TPML_DIGEST_VALUES (§10.9.4) ----

/** Entries in a TPML_DIGEST (8, for PolicyOR) and a TPML_DIGEST_VALUES (HASH_COUNT): the readers refuse more, so the writers do too. */
const DIGEST_LIST_MAX = 8;

function assertListLength(n: number, what: string): void {
  if (n > DIGEST_LIST_MAX) throw new TpmFormatError(`${what}.count: ${n} exceeds ${DIGEST_LIST_MAX}`);
}

export function writeDigests(w: TpmWriter, digests: Uint8Array[]): void {
  assertListLength(digests.length, "TPML_DIGEST");
  w.u32(digests.length);
  for (const d of digests) w.tpm2b(d, LIMITS.digest, "TPML_DIGEST entry");
}

export function readDigests(r: TpmReader, what = "TPML_DIGEST"): Uint8Array[] {
  const count = r.u32(`${what}.count`);
  assertListLength(count, what);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) out.push(r.tpm2b(LIMITS.digest, `${what}[${i}]`));
  return out;
}

/** TPML_DIGEST_VALUES with SHA-256 digests only. */
export function writeDigestValues(w: TpmWriter, sha256Digests: Uint8Array[]): void {
  assertListLength(sha256Digests.length, "TPML_DIGEST_VALUES");
  w.u32(sha256Digests.length);
  for (const d of sha256Digests) {
    if (d.length !== 32) throw new TpmFormatError("TPMT_HA: a SHA-256 digest is 32 bytes");
    w.u16(TPM_ALG.SHA256).bytes(d);
  }
}

export function readDigestValues(r: TpmReader, what = "TPML_DIGEST_VALUES"): Uint8Array[] {
  const count = r.u32(`${what}.count`);
  assertListLength(count, what);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    expectAlg(r, `${what}[${i}].hashAlg`, [TPM_ALG.SHA256]);
    out.push(r.bytes(32, `${what}[${i}].digest`));
  }
  return out;
}

// ---- TPMS_ECC_POINT (Part 2 §11.2.5.2) ----

export function writeEccPoint(w: TpmWriter, p: { x: Uint8Array; y: Uint8Array }): void {
  w.tpm2b(p.x, LIMITS.eccParameter, "x").tpm2b(p.y, LIMITS.eccParameter, "y");
}

export function readEccPoint(r: TpmReader): { x: Uint8Array; y: Uint8Array } {
  return { x: r.tpm2b(LIMITS.eccParameter, "x"), y: r.tpm2b(LIMITS.eccParameter, "y") };
}

// ---- TPMT_TK_CREATION (Part 2 §10.7.3): read and kept opaque ----

export interface Ticket {
  tag: number;
  hierarchy: number;
  digest: Uint8Array;
}

export function readTicket(r: TpmReader, what: string): Ticket {
  return {
    tag: r.u16(`${what}.tag`),
    hierarchy: r.u32(`${what}.hierarchy`),
    digest: r.tpm2b(LIMITS.digest, `${what}.digest`),
  };
}
