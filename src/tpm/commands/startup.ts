/** TPM2_Startup (Part 3 §9.3): firmware's first command after power-on; swtpm's `startup-clear` flag sends it for us. */

import type { TpmExec } from "../client.js";
import { TPM_CC } from "../constants.js";
import { TpmWriter } from "../marshal.js";
import { TpmError } from "../rc.js";

/** Returns false when the TPM was already started (TPM_RC_INITIALIZE), which is not an error for us. */
export async function startup(tpm: TpmExec, type: number): Promise<boolean> {
  try {
    await tpm.exec({
      code: TPM_CC.Startup,
      handles: [],
      auths: [],
      params: new TpmWriter().u16(type).finish(),
      responseHandles: 0,
    });
    return true;
  } catch (err) {
    if (err instanceof TpmError && err.is("INITIALIZE")) return false;
    throw err;
  }
}
