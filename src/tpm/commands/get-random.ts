/** TPM2_GetRandom (Part 3 §16.1): bytes from the TPM's RNG (at most one digest's worth per call). */
import type { TpmExec } from "../client.js";
import { LIMITS, TPM_CC } from "../constants.js";
import { TpmWriter, unmarshal } from "../marshal.js";

export async function getRandom(tpm: TpmExec, bytesRequested: number): Promise<Uint8Array> {
  const params = new TpmWriter().u16(bytesRequested).finish();
  const res = await tpm.exec({ code: TPM_CC.GetRandom, handles: [], auths: [], params, responseHandles: 0 });
  return unmarshal(res.params, "TPM2_GetRandom response", (r) => r.tpm2b(LIMITS.digest, "randomBytes"));
}
