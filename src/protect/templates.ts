/**
 * Object templates custos asks TPMs for, written out field by field so they
 * can be compared with the TCG documents and reproduced with tpm2-tools
 * (docs/FORMATS.md §10).
 */
import { TPM_ALG, TPM_ECC, TPMA_OBJECT } from "../tpm/constants.js";
import { AES128_CFB, type EccPublic, type KeyedHashPublic } from "../tpm/structures.js";

/**
 * The TCG standard ECC P-256 storage key template (TCG TPM v2.0 Provisioning
 * Guidance, SRK template): a restricted decryption key with AES-128-CFB for
 * its children, empty authValue and policy, noDA, and an empty unique field.
 * Under the owner hierarchy it is the SRK; under the NULL hierarchy, custos's
 * ephemeral parent. tpm2-tools makes the same key with
 * `tpm2_createprimary -C o -g sha256 -G ecc256:aes128cfb -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt'`.
 */
export function eccStorageTemplate(): EccPublic {
  return {
    type: "ecc",
    nameAlg: TPM_ALG.SHA256,
    objectAttributes:
      TPMA_OBJECT.fixedTPM |
      TPMA_OBJECT.fixedParent |
      TPMA_OBJECT.sensitiveDataOrigin |
      TPMA_OBJECT.userWithAuth |
      TPMA_OBJECT.noDA |
      TPMA_OBJECT.restricted |
      TPMA_OBJECT.decrypt,
    authPolicy: new Uint8Array(0),
    symmetric: AES128_CFB,
    scheme: "null",
    curveId: TPM_ECC.NIST_P256,
    kdf: "null",
    unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
  };
}

export const SRK_ATTRIBUTES_TPM2_TOOLS =
  "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt";

/** A key at the TPM protection level (FORMATS §10.2): fixed to this TPM and parent, used with its authValue, signing (HMAC) only. */
export function hmacKeyTemplate(): KeyedHashPublic {
  return {
    type: "keyedhash",
    nameAlg: TPM_ALG.SHA256,
    objectAttributes:
      TPMA_OBJECT.fixedTPM |
      TPMA_OBJECT.fixedParent |
      TPMA_OBJECT.userWithAuth |
      TPMA_OBJECT.noDA |
      TPMA_OBJECT.sign,
    authPolicy: new Uint8Array(0),
    scheme: "hmac-sha256",
    unique: new Uint8Array(0),
  };
}
