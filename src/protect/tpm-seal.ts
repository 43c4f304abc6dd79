/**
 * The TPM seal: the root key sealed to this node's TPM, so the node restarts
 * unsealed without custodians — on the same machine, in the same measured
 * state. The sealed object is a keyed-hash data object under the owner
 * hierarchy's storage root key (the TCG ECC P-256 SRK template, re-created
 * deterministically, its name pinned in the record), with the policy
 * PolicyPCR(selection) [+ PolicyAuthValue]. When a selected PCR has changed,
 * the TPM refuses and `unsealFromTpm` reads the PCRs to say which ones.
 * Record format: docs/FORMATS.md §10.
 */
import { b64u, constantTimeEqual, hex, u32be } from "../crypto/bytes.js";
import { Secret } from "../crypto/secret.js";
import type { TpmExec } from "../tpm/client.js";
import type { Authorization } from "../tpm/command.js";
import { create } from "../tpm/commands/create.js";
import { createPrimary } from "../tpm/commands/create-primary.js";
import { flushContext } from "../tpm/commands/flush-context.js";
import { load } from "../tpm/commands/load.js";
import { pcrRead } from "../tpm/commands/pcr-read.js";
import { policyAuthValue } from "../tpm/commands/policy-auth-value.js";
import { policyPcr } from "../tpm/commands/policy-pcr.js";
import { startAuthSession } from "../tpm/commands/start-auth-session.js";
import { unseal } from "../tpm/commands/unseal.js";
import { TPM_ALG, TPM_CC, TPM_RH, TPMA_OBJECT } from "../tpm/constants.js";
import { sha256 } from "../tpm/kdf.js";
import { marshal } from "../tpm/marshal.js";
import type { LoadedObject } from "../tpm/object.js";
import { TpmError } from "../tpm/rc.js";
import type { AuthSession } from "../tpm/session.js";
import { type PcrSelection, writePcrSelections } from "../tpm/structures.js";
import { eccStorageTemplate } from "./templates.js";

export const TPM_SEAL_FORMAT = "custos-tpm-seal/v1";

export interface TpmSealRecord {
  format: typeof TPM_SEAL_FORMAT;
  /** Hex name of the SRK the object was created under: another TPM, or a cleared one, has another. */
  srkName: string;
  pcrBank: "sha256";
  pcrs: number[];
  /** Hex SHA-256 PCR values at sealing time, by PCR index: used to say which PCRs changed. */
  pcrValues: Record<string, string>;
  /** Hex policy digest: PolicyPCR [‖ PolicyAuthValue]. */
  policyDigest: string;
  authValueRequired: boolean;
  /** b64u TPM2B_PUBLIC and TPM2B_PRIVATE contents, as tpm2_load takes them. */
  public: string;
  private: string;
  createdAt: string;
}

/** The TPM refused the unseal because selected PCRs no longer hold the values sealed to. */
export class PcrMismatchError extends Error {
  override name = "PcrMismatchError";
  constructor(readonly changed: number[]) {
    super(
      `the TPM seal does not open: PCR ${changed.join(", ")} changed since sealing (sha256 bank); custodians must unseal this node`,
    );
  }
}

/** The record was made under another TPM's storage root key (another machine, or this TPM was cleared). */
export class WrongTpmError extends Error {
  override name = "WrongTpmError";
}

const EMPTY = new Uint8Array(0);
const OWNER_EMPTY: Authorization = { kind: "password", authValue: EMPTY };

/** PolicyPCR digest from the values (Part 3 §23.7): H(old ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION ‖ H(values in PCR order)). */
export function policyPcrDigest(
  selection: PcrSelection,
  values: Map<number, Uint8Array>,
  old = new Uint8Array(32),
): Uint8Array {
  const ordered = [...selection.pcrs]
    .sort((a, b) => a - b)
    .map((p) => {
      const v = values.get(p);
      if (!v) throw new RangeError(`no value for PCR ${p}`);
      return v;
    });
  const pcrDigest = sha256(...ordered);
  return sha256(
    old,
    u32be(TPM_CC.PolicyPCR),
    marshal((w) => writePcrSelections(w, [selection])),
    pcrDigest,
  );
}

/** PolicyAuthValue digest (Part 3 §23.17): H(old ‖ TPM_CC_PolicyAuthValue). */
export function policyAuthValueDigest(old: Uint8Array): Uint8Array {
  return sha256(old, u32be(TPM_CC.PolicyAuthValue));
}

async function withSrk<T>(x: TpmExec, fn: (srk: LoadedObject) => Promise<T>): Promise<T> {
  const srk = await createPrimary(x, {
    hierarchy: TPM_RH.OWNER,
    auth: OWNER_EMPTY,
    template: eccStorageTemplate(),
  });
  try {
    return await fn(srk);
  } finally {
    await flushContext(x, srk.handle).catch(() => {});
  }
}

async function withSession<T>(
  x: TpmExec,
  key: LoadedObject,
  type: "hmac" | "policy",
  fn: (s: AuthSession) => Promise<T>,
): Promise<T> {
  const s = await startAuthSession(x, key, type);
  try {
    return await fn(s);
  } finally {
    if (!s.closed) {
      s.close();
      await flushContext(x, s.handle).catch(() => {});
    }
  }
}

/** Runs a sequence of commands with the TPM to itself: a TpmClient, or TpmKeys making room first. */
export interface TpmRunner {
  exclusive<T>(fn: (x: TpmExec) => Promise<T>): Promise<T>;
}

export interface SealOptions {
  pcrs: number[];
  /** Also require this authValue (PolicyAuthValue); trailing zero bytes are refused. */
  authValue?: Uint8Array;
  now?: () => Date;
}

/** Seals `secret` (at most 128 bytes) to this TPM under the PCRs' current values. Reads `secret`; the caller still owns it. */
export async function sealToTpm(tpm: TpmRunner, secret: Secret, opts: SealOptions): Promise<TpmSealRecord> {
  const pcrs = [...new Set(opts.pcrs)].sort((a, b) => a - b);
  if (pcrs.length === 0) throw new RangeError("select at least one PCR");
  if (opts.authValue?.length && opts.authValue[opts.authValue.length - 1] === 0) {
    throw new RangeError("the TPM seal authValue must not end in a zero byte");
  }
  const selection: PcrSelection = { hash: TPM_ALG.SHA256, pcrs };
  return tpm.exclusive((x) =>
    withSrk(x, async (srk) => {
      const values = await pcrRead(x, TPM_ALG.SHA256, pcrs);
      let digest = policyPcrDigest(selection, values);
      if (opts.authValue) digest = policyAuthValueDigest(digest);
      const created = await withSession(x, srk, "hmac", (s) =>
        create(x, {
          parent: srk,
          auth: { kind: "session", session: s, authValue: EMPTY },
          template: {
            type: "keyedhash",
            nameAlg: TPM_ALG.SHA256,
            objectAttributes:
              TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.noDA | TPMA_OBJECT.adminWithPolicy,
            authPolicy: digest,
            scheme: "null",
            unique: EMPTY,
          },
          sensitive: { userAuth: opts.authValue ?? EMPTY, data: secret.reveal() },
          encryptWith: s,
        }),
      );
      return {
        format: TPM_SEAL_FORMAT,
        srkName: hex.encode(srk.name),
        pcrBank: "sha256",
        pcrs,
        pcrValues: Object.fromEntries(pcrs.map((p) => [String(p), hex.encode(values.get(p) as Uint8Array)])),
        policyDigest: hex.encode(digest),
        authValueRequired: opts.authValue !== undefined,
        public: b64u.encode(created.publicBytes),
        private: b64u.encode(created.private),
        createdAt: (opts.now?.() ?? new Date()).toISOString(),
      };
    }),
  );
}

/** Opens a TPM seal on this TPM. Throws PcrMismatchError naming the changed PCRs, WrongTpmError for another TPM. */
export async function unsealFromTpm(
  tpm: TpmRunner,
  record: TpmSealRecord,
  authValue?: Uint8Array,
): Promise<Secret> {
  if (record.authValueRequired && !authValue) throw new RangeError("this TPM seal needs its authValue");
  const selection: PcrSelection = { hash: TPM_ALG.SHA256, pcrs: record.pcrs };
  return tpm.exclusive((x) =>
    withSrk(x, async (srk) => {
      if (!constantTimeEqual(srk.name, hex.decode(record.srkName, "srkName"))) {
        throw new WrongTpmError(
          "this TPM's storage root key is not the one the root key was sealed under (another machine, or the TPM was cleared); custodians must unseal this node",
        );
      }
      const item = await withSession(x, srk, "hmac", (s) =>
        load(x, {
          parent: srk,
          auth: { kind: "session", session: s, authValue: EMPTY },
          private: b64u.decode(record.private, "private"),
          publicBytes: b64u.decode(record.public, "public"),
        }),
      );
      try {
        const data = await withSession(x, srk, "policy", async (p) => {
          await policyPcr(x, p, [selection]);
          if (record.authValueRequired) await policyAuthValue(x, p);
          return unseal(
            x,
            item,
            { kind: "session", session: p, authValue: authValue ?? EMPTY, continueSession: false },
            p,
          );
        });
        return Secret.of(data);
      } catch (err) {
        if (err instanceof TpmError && (err.is("POLICY_FAIL") || err.is("PCR_CHANGED"))) {
          const now = await pcrRead(x, TPM_ALG.SHA256, record.pcrs);
          const changed = record.pcrs.filter(
            (p) => hex.encode(now.get(p) as Uint8Array) !== record.pcrValues[String(p)],
          );
          if (changed.length) throw new PcrMismatchError(changed);
        }
        throw err;
      } finally {
        await flushContext(x, item.handle).catch(() => {});
      }
    }),
  );
}

/** Current values of the record's PCRs that differ from the sealed ones (for `tpm-seal status`). */
export async function changedPcrs(tpm: TpmRunner, record: TpmSealRecord): Promise<number[]> {
  const now = await tpm.exclusive((x) => pcrRead(x, TPM_ALG.SHA256, record.pcrs));
  return record.pcrs.filter((p) => hex.encode(now.get(p) as Uint8Array) !== record.pcrValues[String(p)]);
}
