/**
 * TPM2_PolicyAuthValue (Part 3 §23.17): the policy also requires the object's
 * authValue, proven by the session HMAC; from now on the session's HMAC key
 * includes it.
 */
import type { TpmExec } from "../client.js";
import { TPM_CC } from "../constants.js";
import { permanentArg } from "../object.js";
import type { AuthSession } from "../session.js";

export async function policyAuthValue(tpm: TpmExec, session: AuthSession): Promise<void> {
  await tpm.exec({
    code: TPM_CC.PolicyAuthValue,
    handles: [permanentArg(session.handle)],
    auths: [],
    params: new Uint8Array(0),
    responseHandles: 0,
  });
  session.authValueNeeded = true;
}
