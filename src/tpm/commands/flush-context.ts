/** TPM2_FlushContext (Part 3 §28.4): frees a transient object or a session. The handle is a parameter, not in the handle area. */
import type { TpmExec } from "../client.js";
import { TPM_CC } from "../constants.js";
import { TpmWriter } from "../marshal.js";

export async function flushContext(tpm: TpmExec, handle: number): Promise<void> {
  await tpm.exec({
    code: TPM_CC.FlushContext,
    handles: [],
    auths: [],
    params: new TpmWriter().u32(handle).finish(),
    responseHandles: 0,
  });
}
