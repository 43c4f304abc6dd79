/**
 * What the TPM suites share: one swtpm per test file (swtpm serves one TCP
 * client at a time, and the files run in parallel), the TCG-style templates
 * the tests create objects from, and a sweep that flushes every transient
 * object and session a failed test may have left behind, so one failure does
 * not cascade into OBJECT_MEMORY in the next test.
 */
import { TpmClient, type TpmClientOptions } from "../../src/tpm/client.js";
import type { Authorization } from "../../src/tpm/command.js";
import { flushContext } from "../../src/tpm/commands/flush-context.js";
import { getHandles } from "../../src/tpm/commands/get-capability.js";
import { TPMA_OBJECT as A, TPM_ALG, TPM_ECC } from "../../src/tpm/constants.js";
import { AES128_CFB, type EccPublic, type KeyedHashPublic } from "../../src/tpm/structures.js";
import { SwtpmTransport } from "../../src/tpm/transport.js";

export const EMPTY = new Uint8Array(0);

export function password(authValue: Uint8Array = EMPTY): Authorization {
  return { kind: "password", authValue };
}

/** A restricted decryption ECC P-256 storage key, as the TCG's SRK template; the salt key of every session. */
export function eccStorageTemplate(): EccPublic {
  return {
    type: "ecc",
    nameAlg: TPM_ALG.SHA256,
    objectAttributes:
      A.fixedTPM | A.fixedParent | A.sensitiveDataOrigin | A.userWithAuth | A.noDA | A.restricted | A.decrypt,
    authPolicy: EMPTY,
    symmetric: AES128_CFB,
    scheme: "null",
    curveId: TPM_ECC.NIST_P256,
    kdf: "null",
    unique: { x: EMPTY, y: EMPTY },
  };
}

/** An HMAC-SHA-256 key whose bytes the caller supplies (no sensitiveDataOrigin). */
export function hmacKeyTemplate(): KeyedHashPublic {
  return {
    type: "keyedhash",
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: A.fixedTPM | A.fixedParent | A.userWithAuth | A.noDA | A.sign,
    authPolicy: EMPTY,
    scheme: "hmac-sha256",
    unique: EMPTY,
  };
}

/** A sealed data object; `userWithAuth` false means only its policy can authorize it. */
export function sealTemplate(authPolicy: Uint8Array, userWithAuth: boolean): KeyedHashPublic {
  return {
    type: "keyedhash",
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: A.fixedTPM | A.fixedParent | A.noDA | (userWithAuth ? A.userWithAuth : 0),
    authPolicy,
    scheme: "null",
    unique: EMPTY,
  };
}

export function connect(port: number, options?: TpmClientOptions, timeoutMs?: number): TpmClient {
  return new TpmClient(new SwtpmTransport({ host: "127.0.0.1", port, timeoutMs }), options);
}

const HT_TRANSIENT = 0x8000_0000;
const HT_HMAC_SESSION = 0x0200_0000;
const HT_POLICY_SESSION = 0x0300_0000;

/** Transient objects and loaded sessions, as the TPM lists them. */
export async function loadedHandles(tpm: TpmClient): Promise<number[]> {
  const out: number[] = [];
  for (const first of [HT_TRANSIENT, HT_HMAC_SESSION, HT_POLICY_SESSION]) {
    const { handles } = await getHandles(tpm, first, 64);
    out.push(...handles.filter((h) => h >>> 24 === first >>> 24));
  }
  return out;
}

/** Flushes whatever is still loaded; returns what it had to flush (a test that cleaned up leaves nothing). */
export async function flushAll(tpm: TpmClient): Promise<number[]> {
  const left = await loadedHandles(tpm);
  for (const h of left) await flushContext(tpm, h);
  return left;
}

/** Whether `needle` occurs as a contiguous run anywhere in `haystack`. */
export function contains(haystack: Uint8Array[], needle: Uint8Array): boolean {
  const n = Buffer.from(needle);
  return haystack.some((h) => Buffer.from(h.buffer, h.byteOffset, h.byteLength).indexOf(n) >= 0);
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

export function fromHex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "hex"));
}
