/** TPM2_PolicyGetDigest (Part 3 §23.19): the session's current policy digest (a trial session computes a policy without satisfying it). */
import type { TpmExec } from "../client.js";
import { LIMITS, TPM_CC } from "../constants.js";
import { unmarshal } from "../marshal.js";
import { permanentArg } from "../object.js";
import type { AuthSession } from "../session.js";

export async function policyGetDigest(tpm: TpmExec, session: AuthSession): Promise<Uint8Array> {
  const res = await tpm.exec({
    code: TPM_CC.PolicyGetDigest,
    handles: [permanentArg(session.handle)],
    auths: [],
    params: new Uint8Array(0),
    responseHandles: 0,
  });
  return unmarshal(res.params, "TPM2_PolicyGetDigest response", (r) =>
    r.tpm2b(LIMITS.digest, "policyDigest"),
  );
}
