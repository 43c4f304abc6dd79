/**
 * TPM2_EvictControl (Part 3 §28.5): makes a loaded transient object persistent
 * at `persistentHandle` (owner range 0x81000000–0x817FFFFF), or, given a
 * persistent object, removes it.
 */
import type { TpmExec } from "../client.js";
import type { Authorization } from "../command.js";
import { TPM_CC, TPM_RH } from "../constants.js";
import { TpmWriter } from "../marshal.js";
import { type LoadedObject, objectArg, permanentArg } from "../object.js";

export async function evictControl(
  tpm: TpmExec,
  ownerAuth: Authorization,
  object: LoadedObject,
  persistentHandle: number,
): Promise<void> {
  if (persistentHandle < 0x8100_0000 || persistentHandle > 0x817f_ffff) {
    throw new RangeError(`0x${persistentHandle.toString(16)} is not an owner persistent handle`);
  }
  await tpm.exec({
    code: TPM_CC.EvictControl,
    handles: [permanentArg(TPM_RH.OWNER), objectArg(object)],
    auths: [ownerAuth],
    params: new TpmWriter().u32(persistentHandle).finish(),
    responseHandles: 0,
  });
}
