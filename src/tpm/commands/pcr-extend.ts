/** TPM2_PCR_Extend (Part 3 §22.2): PCR ← H(PCR ‖ digest). Authorized by the PCR's (empty) authValue with a password session. */
import type { TpmExec } from "../client.js";
import { TPM_CC } from "../constants.js";
import { TpmWriter } from "../marshal.js";
import { permanentArg } from "../object.js";
import { writeDigestValues } from "../structures.js";

export async function pcrExtend(tpm: TpmExec, pcr: number, sha256Digest: Uint8Array): Promise<void> {
  if (!Number.isInteger(pcr) || pcr < 0 || pcr > 23)
    throw new RangeError(`PCR index ${pcr} is out of range 0..23`);
  const w = new TpmWriter();
  writeDigestValues(w, [sha256Digest]);
  await tpm.exec({
    code: TPM_CC.PCR_Extend,
    handles: [permanentArg(pcr)],
    auths: [{ kind: "password", authValue: new Uint8Array(0) }],
    params: w.finish(),
    responseHandles: 0,
  });
}
