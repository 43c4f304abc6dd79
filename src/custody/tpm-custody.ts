/**
 * The TPM's part in this node's custody: the root key is held in the TPM
 * once unsealed, and, when the TPM seal is enabled, a copy is sealed to the
 * TPM under a PCR policy so the node restarts unsealed on the same machine in
 * the same measured state.
 *
 * Enabling the TPM seal cannot seal anything by itself: on a running node the
 * root key exists only inside the TPM, as an HMAC key whose bytes cannot be
 * read back. So `enable` records the wish ("pending"), and the next time the
 * root key is reconstructed (custodians' unseal, or init) it is sealed to the
 * TPM before it is handed over ("active"). The configuration and the sealed
 * object live in DATA/tpm-seal.json, beside the node's identity: they belong
 * to this machine, not to the shared store. The file is written atomically
 * (temporary file, fsync, rename, fsync of the directory).
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import type { Secret } from "../crypto/secret.js";
import { CustosError } from "../errors.js";
import type { DisposableKeyHandle } from "../protect/levels.js";
import type { TpmKeys } from "../protect/tpm.js";
import {
  changedPcrs,
  sealToTpm,
  TPM_SEAL_FORMAT,
  type TpmSealRecord,
  unsealFromTpm,
} from "../protect/tpm-seal.js";
import { resettablePcrProblem } from "../tpm/resettable-pcrs.js";
import type { RootSource, SealManager } from "./seal.js";

const FILE_FORMAT = "custos-tpm-seal-config/v1";
export const DEFAULT_TPM_SEAL_PCRS = [7];

const PcrList = z.array(z.number().int().min(0).max(23)).min(1).max(24);

const RecordSchema = z.strictObject({
  format: z.literal(TPM_SEAL_FORMAT),
  srkName: z.string().regex(/^000b[0-9a-f]{64}$/),
  pcrBank: z.literal("sha256"),
  pcrs: PcrList,
  pcrValues: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)),
  policyDigest: z.string().regex(/^[0-9a-f]{64}$/),
  authValueRequired: z.boolean(),
  public: z.string().max(2048),
  private: z.string().max(2048),
  createdAt: z.string(),
});

const FileSchema = z.strictObject({
  format: z.literal(FILE_FORMAT),
  state: z.enum(["pending", "active"]),
  pcrs: PcrList,
  enabledBy: z.string(),
  enabledAt: z.string(),
  record: RecordSchema.nullable(),
});

type TpmSealFile = z.infer<typeof FileSchema>;

export interface TpmSealStatus {
  state: "off" | "pending" | "active";
  pcrs: number[];
  sealedAt: string | null;
  /** PCRs whose values differ from those sealed to (active only, when the TPM answers). */
  changedPcrs: number[] | null;
  /** Why the last automatic unseal did not happen, if it did not. */
  lastError: string | null;
}

export class TpmCustody {
  readonly keys: TpmKeys;
  readonly #path: string;
  readonly #log: Logger;
  #file: TpmSealFile | null;
  #lastError: string | null = null;

  constructor(keys: TpmKeys, dataDir: string, log: Logger) {
    this.keys = keys;
    this.#path = join(dataDir, "tpm-seal.json");
    this.#log = log;
    this.#file = this.#read();
  }

  #read(): TpmSealFile | null {
    if (!existsSync(this.#path)) return null;
    const parsed = FileSchema.safeParse(JSON.parse(readFileSync(this.#path, "utf8")));
    if (!parsed.success) {
      throw new Error(
        `${this.#path} is not a valid ${FILE_FORMAT} file: ${parsed.error.issues[0]?.message ?? "invalid"}`,
      );
    }
    return parsed.data;
  }

  #write(file: TpmSealFile | null): void {
    if (file === null) {
      rmSync(this.#path, { force: true });
    } else {
      const tmp = `${this.#path}.tmp`;
      const fd = openSync(tmp, "w", 0o600);
      try {
        writeSync(fd, `${JSON.stringify(file, null, 2)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.#path);
    }
    const dir = openSync(dirname(this.#path), "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    this.#file = file;
  }

  /**
   * SealManager's `protectRoot`: seals the root key to the TPM first when the
   * TPM seal is enabled (and the key did not itself come from it), then hands
   * the key to the TPM. Failing to seal leaves the node unsealed and says why.
   */
  protectRoot = async (rootKey: Secret, source: RootSource): Promise<DisposableKeyHandle> => {
    const file = this.#file;
    if (file && source !== "tpm-seal") {
      try {
        const record = await sealToTpm(this.keys.roomy, rootKey, {
          pcrs: file.pcrs,
        });
        this.#write({ ...file, state: "active", record });
        this.#lastError = null;
        this.#log.info({ pcrs: file.pcrs }, "root key sealed to this node's TPM");
      } catch (err) {
        this.#lastError = `sealing the root key to the TPM failed: ${(err as Error).message}`;
        this.#log.error(
          { err },
          "sealing the root key to the TPM failed; the node stays unsealed, restarts need custodians",
        );
      }
    }
    return this.keys.importKey(rootKey);
  };

  /** At start, or after a TPM reset: opens the TPM seal if there is one. Never throws; the reason stays in the status. */
  async tryUnseal(seal: SealManager): Promise<boolean> {
    const record = this.#file?.state === "active" ? this.#file.record : null;
    if (!record || !seal.sealed || !seal.initialized) return false;
    try {
      const rk = await unsealFromTpm(this.keys.roomy, record as TpmSealRecord);
      await seal.unsealWithRootKey(
        rk,
        "tpm-seal",
        `unsealed by the TPM seal (PCR ${record.pcrs.join(", ")})`,
      );
      this.#lastError = null;
      this.#log.info("unsealed by the TPM seal");
      return true;
    } catch (err) {
      this.#lastError = (err as Error).message;
      this.#log.error({ err }, "the TPM seal did not open; the node stays sealed until custodians unseal it");
      return false;
    }
  }

  enable(pcrs: number[], by: string): TpmSealStatus {
    const list = PcrList.safeParse([...new Set(pcrs)].sort((a, b) => a - b));
    if (!list.success)
      throw new CustosError(400, "invalid_pcrs", "pcrs must be 1 to 24 PCR indices in 0..23");
    const resettable = resettablePcrProblem(list.data);
    if (resettable) throw new CustosError(400, "invalid_pcrs", resettable);
    const same = this.#file?.state === "active" && this.#file.pcrs.join() === list.data.join();
    if (!same) {
      this.#write({
        format: FILE_FORMAT,
        state: "pending",
        pcrs: list.data,
        enabledBy: by,
        enabledAt: new Date().toISOString(),
        record: null,
      });
    }
    return this.statusNow();
  }

  disable(): TpmSealStatus {
    this.#write(null);
    this.#lastError = null;
    return this.statusNow();
  }

  /** The status from what this process knows, without asking the TPM. */
  statusNow(changed: number[] | null = null): TpmSealStatus {
    const f = this.#file;
    return {
      state: f ? f.state : "off",
      pcrs: f?.pcrs ?? [],
      sealedAt: f?.record?.createdAt ?? null,
      changedPcrs: changed,
      lastError: this.#lastError,
    };
  }

  /** The status, with the PCRs that changed since sealing when the TPM answers. */
  async status(): Promise<TpmSealStatus> {
    const record = this.#file?.state === "active" ? this.#file.record : null;
    if (!record) return this.statusNow();
    const changed = await changedPcrs(this.keys.roomy, record as TpmSealRecord).catch(() => null);
    return this.statusNow(changed);
  }
}
