/**
 * TPM2_ReadPublic (Part 3 §12.4): the public area of a loaded or persistent
 * object. The name the TPM reports is checked against the one computed from
 * the public area it returned.
 */
import { constantTimeEqual } from "../../crypto/bytes.js";
import type { TpmExec } from "../client.js";
import { LIMITS, TPM_CC } from "../constants.js";
import { TpmFormatError, unmarshal } from "../marshal.js";
import { type LoadedObject, loadedObject, permanentArg } from "../object.js";
import { readPublic2b } from "../structures.js";

export async function readPublicArea(tpm: TpmExec, handle: number): Promise<LoadedObject> {
  const res = await tpm.exec({
    code: TPM_CC.ReadPublic,
    handles: [permanentArg(handle)],
    auths: [],
    params: new Uint8Array(0),
    responseHandles: 0,
  });
  return unmarshal(res.params, "TPM2_ReadPublic response", (r) => {
    const { pub, bytes } = readPublic2b(r, "outPublic");
    const name = r.tpm2b(LIMITS.name, "name");
    r.tpm2b(LIMITS.name, "qualifiedName");
    const obj = loadedObject(handle, pub, bytes);
    if (!constantTimeEqual(name, obj.name))
      throw new TpmFormatError("TPM2_ReadPublic: the name does not match the public area");
    return obj;
  });
}
