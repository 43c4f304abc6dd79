/** TPM2_Load (Part 3 §12.2): loads an object created under `parent` from its private and public parts. */
import { constantTimeEqual } from "../../crypto/bytes.js";
import type { TpmExec } from "../client.js";
import type { Authorization } from "../command.js";
import { LIMITS, TPM_CC } from "../constants.js";
import { TpmFormatError, TpmReader, TpmWriter, unmarshal } from "../marshal.js";
import { type LoadedObject, loadedObject, objectArg } from "../object.js";
import { readPublic } from "../structures.js";

export interface LoadArgs {
  parent: LoadedObject;
  auth: Authorization;
  private: Uint8Array;
  publicBytes: Uint8Array;
}

export async function load(tpm: TpmExec, a: LoadArgs): Promise<LoadedObject> {
  const pubReader = new TpmReader(a.publicBytes);
  const pub = readPublic(pubReader, "inPublic");
  pubReader.done("inPublic");
  const params = new TpmWriter()
    .tpm2b(a.private, LIMITS.private, "inPrivate")
    .tpm2b(a.publicBytes, LIMITS.public, "inPublic")
    .finish();
  const res = await tpm.exec({
    code: TPM_CC.Load,
    handles: [objectArg(a.parent)],
    auths: [a.auth],
    params,
    responseHandles: 1,
  });
  const obj = loadedObject(res.handles[0] as number, pub, a.publicBytes);
  const name = unmarshal(res.params, "TPM2_Load response", (r) => r.tpm2b(LIMITS.name, "name"));
  if (!constantTimeEqual(name, obj.name))
    throw new TpmFormatError("TPM2_Load: the name does not match the public area");
  return obj;
}
