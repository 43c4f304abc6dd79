/**
 * TPM2_StartAuthSession (Part 3 §11.1), always salted. The salt is made by
 * ECDH with an ephemeral P-256 key against `tpmKey`'s public key and sent as
 * the ephemeral point (Part 1 Annex C.6.1, KDFe label "SECRET"); the session
 * key is KDFa(salt, "ATH", nonceTPM, nonceCaller) (Part 1 §19.6.8). Whoever
 * watches the bus sees the point, never the salt, so cannot compute the
 * session key, decrypt parameters or forge HMACs. The session is unbound.
 */
import { createECDH } from "node:crypto";
import { randomBytes } from "../../crypto/bytes.js";
import type { TpmExec } from "../client.js";
import { LIMITS, TPM_ALG, TPM_CC, TPM_RH, TPM_SE } from "../constants.js";
import { kdfa, kdfe } from "../kdf.js";
import { TpmFormatError, TpmWriter, unmarshal } from "../marshal.js";
import { type LoadedObject, permanentArg } from "../object.js";
import { AuthSession, type SessionType } from "../session.js";
import { AES128_CFB, writeEccPoint, writeSymDef } from "../structures.js";

const TYPES: Record<SessionType, number> = { hmac: TPM_SE.HMAC, policy: TPM_SE.POLICY, trial: TPM_SE.TRIAL };

export async function startAuthSession(
  tpm: TpmExec,
  tpmKey: LoadedObject,
  type: SessionType,
): Promise<AuthSession> {
  if (tpmKey.pub.type !== "ecc") throw new TpmFormatError("the salt key must be an ECC P-256 key");
  const { x, y } = tpmKey.pub.unique;
  if (x.length !== 32 || y.length !== 32)
    throw new TpmFormatError("the salt key's public point is not a P-256 point");
  const ecdh = createECDH("prime256v1");
  const ephemeral = new Uint8Array(ecdh.generateKeys());
  const z = new Uint8Array(ecdh.computeSecret(Buffer.concat([Buffer.of(4), x, y])));
  const ex = ephemeral.subarray(1, 33);
  const salt = kdfe(z, "SECRET", ex, x, 256);
  z.fill(0);
  ecdh.setPrivateKey(randomBytes(32));

  const nonceCaller = randomBytes(32);
  const encryptedSalt = new TpmWriter();
  writeEccPoint(encryptedSalt, { x: ex, y: ephemeral.subarray(33, 65) });
  const w = new TpmWriter()
    .tpm2b(nonceCaller, LIMITS.digest, "nonceCaller")
    .tpm2b(encryptedSalt.finish(), LIMITS.encryptedSecret, "encryptedSalt")
    .u8(TYPES[type]);
  writeSymDef(w, AES128_CFB);
  w.u16(TPM_ALG.SHA256);
  try {
    const res = await tpm.exec({
      code: TPM_CC.StartAuthSession,
      handles: [{ handle: tpmKey.handle, name: tpmKey.name }, permanentArg(TPM_RH.NULL)],
      auths: [],
      params: w.finish(),
      responseHandles: 1,
    });
    const nonceTPM = unmarshal(res.params, "TPM2_StartAuthSession response", (r) =>
      r.tpm2b(LIMITS.digest, "nonceTPM"),
    );
    const sessionKey = kdfa(salt, "ATH", nonceTPM, nonceCaller, 256);
    return new AuthSession(res.handles[0] as number, type, nonceTPM, sessionKey, AES128_CFB);
  } finally {
    salt.fill(0);
  }
}
