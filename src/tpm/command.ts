/**
 * One TPM command on the wire (Part 1 §18): header, handles, the
 * authorization area, parameters; and the response read back, its sessions
 * checked. This is where sessions do their work:
 *
 * - parameter encryption (§21): the first command parameter is encrypted
 *   with AES-128-CFB before the cpHash is taken, and the first response
 *   parameter decrypted after the rpHash is checked, exactly as the TPM
 *   does, so a secret (key bytes into Create, the HMAC out of TPM2_HMAC, the
 *   data out of Unseal) never crosses the bus in the clear;
 * - authorization HMACs (§19.6): over cpHash ‖ nonceCaller ‖ nonceTPM
 *   [‖ nonceDecrypt ‖ nonceEncrypt] ‖ attributes, and the response HMAC is
 *   verified in constant time before anything in the response is believed.
 *
 * A fresh nonceCaller is drawn for every command, so a command is rebuilt,
 * not resent, when the TPM asks for a retry.
 */
import { constantTimeEqual, randomBytes, u32be } from "../crypto/bytes.js";
import { LIMITS, TPM_CC, TPM_RH, TPM_ST, TPMA_SESSION } from "./constants.js";
import { cfb, hmacSha256, sha256 } from "./kdf.js";
import { TpmFormatError, TpmReader, TpmWriter } from "./marshal.js";
import { TpmError } from "./rc.js";
import type { AuthSession } from "./session.js";

export interface HandleArg {
  handle: number;
  /** The entity's name: for an object nameAlg ‖ H(public), for anything else the handle's 4 bytes. */
  name: Uint8Array;
}

export type Authorization =
  | { kind: "password"; authValue: Uint8Array }
  | { kind: "session"; session: AuthSession; authValue: Uint8Array; continueSession?: boolean };

export interface CommandRequest {
  code: number;
  handles: HandleArg[];
  /** One per handle that needs authorization, in handle order. */
  auths: Authorization[];
  params: Uint8Array;
  responseHandles: number;
  /** Encrypt the first command parameter and/or the first response parameter with this session. */
  encryptWith?: { session: AuthSession; decrypt: boolean; encrypt: boolean };
}

export interface CommandResponse {
  handles: number[];
  /** Response parameters, the first one decrypted if it was encrypted. */
  params: Uint8Array;
}

const CC_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(TPM_CC).map(([k, v]) => [v, `TPM2_${k}`]),
);

export function commandName(code: number): string {
  return CC_NAMES[code] ?? `TPM_CC 0x${code.toString(16)}`;
}

interface SessionUse {
  auth: Authorization;
  /** null for an encrypt/decrypt-only session, which authorizes nothing. */
  authValue: Uint8Array | null;
  attributes: number;
  nonceCaller: Uint8Array;
}

/** The built command plus what is needed to check and decrypt its response. */
export interface PreparedCommand {
  bytes: Uint8Array;
  finish(response: Uint8Array): CommandResponse;
}

export function prepareCommand(req: CommandRequest): PreparedCommand {
  const uses: SessionUse[] = req.auths.map((auth) =>
    auth.kind === "password"
      ? {
          auth,
          authValue: auth.authValue,
          attributes: TPMA_SESSION.continueSession,
          nonceCaller: new Uint8Array(0),
        }
      : {
          auth,
          authValue: auth.authValue,
          attributes: auth.continueSession === false ? 0 : TPMA_SESSION.continueSession,
          nonceCaller: randomBytes(32),
        },
  );
  let cryptIndex = -1;
  if (req.encryptWith) {
    const { session } = req.encryptWith;
    if (!session.symmetric) throw new Error(`${session} has no symmetric algorithm for parameter encryption`);
    cryptIndex = uses.findIndex((u) => u.auth.kind === "session" && u.auth.session === session);
    if (cryptIndex < 0) {
      uses.push({
        auth: { kind: "session", session, authValue: new Uint8Array(0) },
        authValue: null,
        attributes: TPMA_SESSION.continueSession,
        nonceCaller: randomBytes(32),
      });
      cryptIndex = uses.length - 1;
    }
    const use = uses[cryptIndex] as SessionUse;
    if (req.encryptWith.decrypt) use.attributes |= TPMA_SESSION.decrypt;
    if (req.encryptWith.encrypt) use.attributes |= TPMA_SESSION.encrypt;
  }
  const cryptUse = cryptIndex >= 0 ? (uses[cryptIndex] as SessionUse) : null;
  const cryptSession = cryptUse && cryptUse.auth.kind === "session" ? cryptUse.auth.session : null;

  const params = req.params.slice();
  if (cryptUse && cryptSession && req.encryptWith?.decrypt) {
    const size = firstTpm2bSize(params, "command parameter 1");
    const key = cryptSession.cipherKey(cryptUse.authValue);
    cfb("encrypt", key, cryptUse.nonceCaller, cryptSession.nonceTPM, params.subarray(2, 2 + size));
    key.fill(0);
  }

  const names = req.handles.map((h) => h.name);
  const cpHash = sha256(u32be(req.code), ...names, params);
  const area = new TpmWriter();
  uses.forEach((use, i) => {
    const { auth } = use;
    if (auth.kind === "password") {
      area.u32(TPM_RH.PW).tpm2b(new Uint8Array(0), LIMITS.digest, "nonce").u8(use.attributes);
      area.tpm2b(auth.authValue, LIMITS.digest, "password");
      return;
    }
    const s = auth.session;
    const extra: Uint8Array[] = [];
    if (i === 0 && use.authValue !== null && cryptSession && cryptIndex !== 0)
      extra.push(cryptSession.nonceTPM);
    const key = s.hmacKey(use.authValue);
    const hmac =
      key.length === 0
        ? new Uint8Array(0)
        : hmacSha256(key, cpHash, use.nonceCaller, s.nonceTPM, ...extra, Uint8Array.of(use.attributes));
    key.fill(0);
    area.u32(s.handle).tpm2b(use.nonceCaller, LIMITS.digest, "nonceCaller").u8(use.attributes);
    area.tpm2b(hmac, LIMITS.digest, "hmac");
  });
  const authArea = area.finish();

  const w = new TpmWriter();
  const body = new TpmWriter();
  for (const h of req.handles) body.u32(h.handle);
  if (uses.length) body.u32(authArea.length).bytes(authArea);
  body.bytes(params);
  const bodyBytes = body.finish();
  w.u16(uses.length ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS)
    .u32(10 + bodyBytes.length)
    .u32(req.code)
    .bytes(bodyBytes);

  return {
    bytes: w.finish(),
    finish: (response) => parseResponse(req, uses, cryptIndex, response),
  };
}

function firstTpm2bSize(params: Uint8Array, what: string): number {
  if (params.length < 2) throw new TpmFormatError(`${what}: not a TPM2B`);
  const size = (params[0] as number) * 256 + (params[1] as number);
  if (2 + size > params.length)
    throw new TpmFormatError(`${what}: TPM2B size ${size} overruns the parameters`);
  return size;
}

function parseResponse(
  req: CommandRequest,
  uses: SessionUse[],
  cryptIndex: number,
  response: Uint8Array,
): CommandResponse {
  const what = commandName(req.code);
  const r = new TpmReader(response);
  const tag = r.u16(`${what} response tag`);
  const size = r.u32(`${what} response size`);
  if (size !== response.length)
    throw new TpmFormatError(`${what}: response says ${size} bytes, got ${response.length}`);
  const rc = r.u32(`${what} response code`);
  if (rc !== 0) {
    r.done(`${what} error response`);
    throw new TpmError(rc, what);
  }
  const expectedTag = uses.length ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
  if (tag !== expectedTag)
    throw new TpmFormatError(`${what}: response tag 0x${tag.toString(16)} does not match the command's`);
  const handles: number[] = [];
  for (let i = 0; i < req.responseHandles; i++) handles.push(r.u32(`${what} response handle ${i}`));
  let params: Uint8Array;
  if (uses.length) {
    const paramSize = r.u32(`${what} parameterSize`);
    params = r.bytes(paramSize, `${what} parameters`);
  } else {
    params = r.bytes(r.remaining, `${what} parameters`);
  }
  const rpHash = sha256(u32be(0), u32be(req.code), params);
  const nonces: Uint8Array[] = [];
  uses.forEach((use, i) => {
    const nonceTPM = r.tpm2b(LIMITS.digest, `${what} session ${i + 1} nonceTPM`);
    const attributes = r.u8(`${what} session ${i + 1} attributes`);
    const hmac = r.tpm2b(LIMITS.digest, `${what} session ${i + 1} hmac`);
    nonces.push(nonceTPM);
    if (use.auth.kind === "password") {
      if (nonceTPM.length || hmac.length)
        throw new TpmFormatError(`${what}: password session answered with a nonce or HMAC`);
      return;
    }
    const s = use.auth.session;
    const key = s.hmacKey(use.authValue);
    const expected =
      key.length === 0
        ? new Uint8Array(0)
        : hmacSha256(key, rpHash, nonceTPM, use.nonceCaller, Uint8Array.of(attributes));
    key.fill(0);
    if (expected.length !== hmac.length || !constantTimeEqual(expected, hmac)) {
      throw new TpmResponseAuthError(`${what}: the response HMAC of session ${i + 1} does not verify`);
    }
  });
  r.done(`${what} response`);
  if (cryptIndex >= 0 && req.encryptWith?.encrypt) {
    const use = uses[cryptIndex] as SessionUse;
    const size = firstTpm2bSize(params, `${what} response parameter 1`);
    const key = req.encryptWith.session.cipherKey(use.authValue);
    cfb("decrypt", key, nonces[cryptIndex] as Uint8Array, use.nonceCaller, params.subarray(2, 2 + size));
    key.fill(0);
  }
  uses.forEach((use, i) => {
    if (use.auth.kind !== "session") return;
    const s = use.auth.session;
    s.nonceTPM = nonces[i] as Uint8Array;
    if (!(use.attributes & TPMA_SESSION.continueSession)) s.close();
  });
  return { handles, params };
}

/** The response's HMAC did not verify: the bytes were altered on the way, or did not come from the TPM we share a session with. */
export class TpmResponseAuthError extends Error {
  override name = "TpmResponseAuthError";
}
