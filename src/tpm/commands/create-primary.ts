/**
 * TPM2_CreatePrimary (Part 3 §24.1): a primary object derived from a
 * hierarchy's seed and the template, so the same template gives the same key
 * for as long as the seed lives (owner: until TPM2_Clear; null: until the next
 * TPM reset).
 */

import { constantTimeEqual } from "../../crypto/bytes.js";
import type { TpmExec } from "../client.js";
import type { Authorization } from "../command.js";
import { LIMITS, TPM_CC } from "../constants.js";
import { TpmFormatError, TpmWriter, unmarshal } from "../marshal.js";
import { type LoadedObject, loadedObject, permanentArg } from "../object.js";
import type { AuthSession } from "../session.js";
import {
  marshalSensitiveCreate,
  readPublic2b,
  readTicket,
  type SensitiveCreate,
  type TpmtPublic,
  writePcrSelections,
  writePublic2b,
} from "../structures.js";

export interface CreatePrimaryArgs {
  hierarchy: number;
  auth: Authorization;
  template: TpmtPublic;
  sensitive?: SensitiveCreate;
  /** Encrypts inSensitive on the way in (it carries the new object's authValue). */
  encryptWith?: AuthSession;
}

export async function createPrimary(tpm: TpmExec, a: CreatePrimaryArgs): Promise<LoadedObject> {
  const w = new TpmWriter().bytes(
    marshalSensitiveCreate(a.sensitive ?? { userAuth: new Uint8Array(0), data: new Uint8Array(0) }),
  );
  writePublic2b(w, a.template);
  w.tpm2b(new Uint8Array(0), LIMITS.data, "outsideInfo");
  writePcrSelections(w, []);
  const res = await tpm.exec({
    code: TPM_CC.CreatePrimary,
    handles: [permanentArg(a.hierarchy)],
    auths: [a.auth],
    params: w.finish(),
    responseHandles: 1,
    encryptWith: a.encryptWith ? { session: a.encryptWith, decrypt: true, encrypt: false } : undefined,
  });
  return unmarshal(res.params, "TPM2_CreatePrimary response", (r) => {
    const { pub, bytes } = readPublic2b(r, "outPublic");
    r.tpm2b(LIMITS.creationData, "creationData");
    r.tpm2b(LIMITS.digest, "creationHash");
    readTicket(r, "creationTicket");
    const name = r.tpm2b(LIMITS.name, "name");
    const obj = loadedObject(res.handles[0] as number, pub, bytes);
    if (!constantTimeEqual(name, obj.name))
      throw new TpmFormatError("TPM2_CreatePrimary: the name does not match the public area");
    return obj;
  });
}
