/**
 * TPM2_Create (Part 3 §12.1): a new object under a loaded storage parent,
 * returned as a private blob (encrypted and integrity-protected by the
 * parent) and its public area, to be loaded with TPM2_Load. custos uses it for
 * keyed-hash objects whose bytes it supplies (an HMAC key, a sealed root key);
 * inSensitive carries those bytes, so a session must encrypt it.
 */
import type { TpmExec } from "../client.js";
import type { Authorization } from "../command.js";
import { LIMITS, TPM_CC } from "../constants.js";
import { TpmWriter, unmarshal } from "../marshal.js";
import { type LoadedObject, objectArg } from "../object.js";
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

export interface CreateArgs {
  parent: LoadedObject;
  auth: Authorization;
  template: TpmtPublic;
  sensitive: SensitiveCreate;
  encryptWith: AuthSession;
}

export interface CreateResponse {
  /** TPM2B_PRIVATE contents: opaque, sealed by the parent. */
  private: Uint8Array;
  pub: TpmtPublic;
  publicBytes: Uint8Array;
}

export async function create(tpm: TpmExec, a: CreateArgs): Promise<CreateResponse> {
  const sensitive = marshalSensitiveCreate(a.sensitive);
  const w = new TpmWriter().bytes(sensitive);
  writePublic2b(w, a.template);
  w.tpm2b(new Uint8Array(0), LIMITS.data, "outsideInfo");
  writePcrSelections(w, []);
  const params = w.finish();
  sensitive.fill(0);
  try {
    const res = await tpm.exec({
      code: TPM_CC.Create,
      handles: [objectArg(a.parent)],
      auths: [a.auth],
      params,
      responseHandles: 0,
      encryptWith: { session: a.encryptWith, decrypt: true, encrypt: false },
    });
    return unmarshal(res.params, "TPM2_Create response", (r) => {
      const priv = r.tpm2b(LIMITS.private, "outPrivate");
      const { pub, bytes } = readPublic2b(r, "outPublic");
      r.tpm2b(LIMITS.creationData, "creationData");
      r.tpm2b(LIMITS.digest, "creationHash");
      readTicket(r, "creationTicket");
      return { private: priv, pub, publicBytes: bytes };
    });
  } finally {
    params.fill(0);
  }
}
