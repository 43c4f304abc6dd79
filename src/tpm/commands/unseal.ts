/**
 * TPM2_Unseal (Part 3 §12.7): the data of a sealed keyed-hash object. The
 * response parameter is the secret itself, so the caller must pass a session
 * that encrypts it (`encryptWith`); the bytes returned are the caller's to wipe.
 */
import type { TpmExec } from "../client.js";
import type { Authorization } from "../command.js";
import { LIMITS, TPM_CC } from "../constants.js";
import { unmarshal } from "../marshal.js";
import { type LoadedObject, objectArg } from "../object.js";
import type { AuthSession } from "../session.js";

export async function unseal(
  tpm: TpmExec,
  item: LoadedObject,
  auth: Authorization,
  encryptWith: AuthSession,
): Promise<Uint8Array> {
  const res = await tpm.exec({
    code: TPM_CC.Unseal,
    handles: [objectArg(item)],
    auths: [auth],
    params: new Uint8Array(0),
    responseHandles: 0,
    encryptWith: { session: encryptWith, decrypt: false, encrypt: true },
  });
  try {
    return unmarshal(res.params, "TPM2_Unseal response", (r) => r.tpm2b(LIMITS.sensitiveData, "outData"));
  } finally {
    res.params.fill(0);
  }
}
