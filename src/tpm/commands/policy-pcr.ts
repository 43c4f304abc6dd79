/**
 * TPM2_PolicyPCR (Part 3 §23.7): extends the session's policy digest with the
 * selected PCRs' current values. An empty `pcrDigest` lets the TPM use the
 * values it has now; a given one must match them.
 */
import type { TpmExec } from "../client.js";
import { LIMITS, TPM_CC } from "../constants.js";
import { TpmWriter } from "../marshal.js";
import { permanentArg } from "../object.js";
import type { AuthSession } from "../session.js";
import { type PcrSelection, writePcrSelections } from "../structures.js";

export async function policyPcr(
  tpm: TpmExec,
  session: AuthSession,
  pcrs: PcrSelection[],
  pcrDigest = new Uint8Array(0),
): Promise<void> {
  const w = new TpmWriter().tpm2b(pcrDigest, LIMITS.digest, "pcrDigest");
  writePcrSelections(w, pcrs);
  await tpm.exec({
    code: TPM_CC.PolicyPCR,
    handles: [permanentArg(session.handle)],
    auths: [],
    params: w.finish(),
    responseHandles: 0,
  });
}
