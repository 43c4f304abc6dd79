/**
 * TPM 2.0 constants used by custos, named and valued as in the TCG TPM 2.0
 * Library specification, Part 2 (Structures). Only what the client uses is
 * here: each table keeps the spec's names so a reader can grep the spec.
 */

/** Part 2 §6.9 TPM_ST: structure tags. */
export const TPM_ST = {
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  CREATION: 0x8021,
  HASHCHECK: 0x8024,
} as const;

/** Part 2 §6.5.2 TPM_CC: command codes. */
export const TPM_CC = {
  EvictControl: 0x0000_0120,
  CreatePrimary: 0x0000_0131,
  SequenceComplete: 0x0000_013e,
  Startup: 0x0000_0144,
  Create: 0x0000_0153,
  Load: 0x0000_0157,
  HMAC: 0x0000_0155,
  HMAC_Start: 0x0000_015b,
  SequenceUpdate: 0x0000_015c,
  Unseal: 0x0000_015e,
  FlushContext: 0x0000_0165,
  PolicyAuthValue: 0x0000_016b,
  ReadPublic: 0x0000_0173,
  StartAuthSession: 0x0000_0176,
  GetCapability: 0x0000_017a,
  GetRandom: 0x0000_017b,
  PCR_Read: 0x0000_017e,
  PolicyPCR: 0x0000_017f,
  PCR_Extend: 0x0000_0182,
  PolicyGetDigest: 0x0000_0189,
} as const;

/** Part 2 §6.3 TPM_ALG_ID. */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  ECDH: 0x0019,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CFB: 0x0043,
} as const;

/** Part 2 §6.4 TPM_ECC_CURVE. */
export const TPM_ECC = { NIST_P256: 0x0003 } as const;

/** Part 2 §7.4 TPM_RH / §7.6 TPM_RS: permanent handles. */
export const TPM_RH = {
  OWNER: 0x4000_0001,
  NULL: 0x4000_0007,
  PW: 0x4000_0009,
  ENDORSEMENT: 0x4000_000b,
  PLATFORM: 0x4000_000c,
} as const;

/** Part 2 §7.2 TPM_HT: the handle's top byte says what it refers to. */
export const TPM_HT = {
  PCR: 0x00,
  HMAC_SESSION: 0x02,
  POLICY_SESSION: 0x03,
  PERMANENT: 0x40,
  TRANSIENT: 0x80,
  PERSISTENT: 0x81,
} as const;

/** Part 2 §8.3 TPMA_OBJECT bits. */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

/** Part 2 §8.4 TPMA_SESSION bits. */
export const TPMA_SESSION = {
  continueSession: 0x01,
  auditExclusive: 0x02,
  auditReset: 0x04,
  decrypt: 0x20,
  encrypt: 0x40,
  audit: 0x80,
} as const;

/** Part 2 §6.11 TPM_SE: session types. */
export const TPM_SE = { HMAC: 0x00, POLICY: 0x01, TRIAL: 0x03 } as const;

/** Part 2 §6.5 TPM_SU: startup types. */
export const TPM_SU = { CLEAR: 0x0000, STATE: 0x0001 } as const;

/** Part 2 §6.12 TPM_CAP and §6.13 TPM_PT (the subset we read). */
export const TPM_CAP = { HANDLES: 0x0000_0001, TPM_PROPERTIES: 0x0000_0006 } as const;
export const TPM_PT = {
  MANUFACTURER: 0x0000_0105,
  INPUT_BUFFER: 0x0000_010d,
  HR_TRANSIENT_MIN: 0x0000_010e,
  HR_LOADED_MIN: 0x0000_0110,
  MAX_DIGEST: 0x0000_0120,
} as const;

/** Part 2 §10.3.2, §10.4: the bounds of the TPM2B buffers we parse. */
export const LIMITS = {
  /** TPM2B_DIGEST / TPM2B_NONCE / TPM2B_AUTH: sizeof(TPMU_HA) (SHA-512). */
  digest: 64,
  /** TPM2B_MAX_BUFFER: MAX_DIGEST_BUFFER on every TPM we target. */
  maxBuffer: 1024,
  /** TPM2B_SENSITIVE_DATA: MAX_SYM_DATA. */
  sensitiveData: 128,
  /** TPM2B_ECC_PARAMETER: MAX_ECC_KEY_BYTES (P-521 would need 66). */
  eccParameter: 66,
  /** TPM2B_NAME: a handle or an algorithm id plus a digest. */
  name: 2 + 64,
  /** TPM2B_PUBLIC / TPM2B_PRIVATE / TPM2B_ENCRYPTED_SECRET / TPM2B_CREATION_DATA: generous upper bounds. */
  public: 1024,
  private: 1024,
  encryptedSecret: 512,
  creationData: 1024,
  data: 64,
  /** A whole response: MAX_RESPONSE_SIZE of the reference implementation. */
  response: 4096,
  /** PCR indices a selection can name: 3 select bytes on every PC-client TPM, at most 4 in the spec. */
  pcrSelectBytes: 4,
  /** Entries in a TPML_*: MAX_CAP_* and HASH_COUNT are all below this. */
  listEntries: 64,
} as const;

export const SHA256_BYTES = 32;
