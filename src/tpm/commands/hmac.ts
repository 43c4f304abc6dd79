/**
 * TPM2_HMAC (Part 3 §15.5): HMAC-SHA-256 of up to one TPM2B_MAX_BUFFER of
 * data with a loaded keyed-hash key. This is `prf` at the TPM protection
 * level; its output is a wrapping key, so the response is encrypted by the
 * session (`encryptWith`) and the input too (it carries the operation's nonce
 * and context hash, which are not secret, but costs nothing to hide).
 */
import type { TpmExec } from "../client.js";
import type { Authorization } from "../command.js";
import { LIMITS, TPM_ALG, TPM_CC } from "../constants.js";
import { TpmWriter, unmarshal } from "../marshal.js";
import { type LoadedObject, objectArg } from "../object.js";
import type { AuthSession } from "../session.js";

export async function hmac(
  tpm: TpmExec,
  key: LoadedObject,
  auth: Authorization,
  data: Uint8Array,
  encryptWith: AuthSession,
): Promise<Uint8Array> {
  const params = new TpmWriter().tpm2b(data, LIMITS.maxBuffer, "buffer").u16(TPM_ALG.SHA256).finish();
  const res = await tpm.exec({
    code: TPM_CC.HMAC,
    handles: [objectArg(key)],
    auths: [auth],
    params,
    responseHandles: 0,
    encryptWith: { session: encryptWith, decrypt: true, encrypt: true },
  });
  try {
    return unmarshal(res.params, "TPM2_HMAC response", (r) => r.tpm2b(LIMITS.digest, "outHMAC"));
  } finally {
    res.params.fill(0);
  }
}
