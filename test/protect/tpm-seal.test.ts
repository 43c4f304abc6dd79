/**
 * The TPM seal against a real swtpm, and against tpm2-tools as a peer
 * implementation: what custos seals under the SRK template with a PCR policy
 * tpm2-tools unseals, and what tpm2-tools seals custos unseals. A PCR extend
 * makes the seal refuse and the error names the PCR.
 */
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { b64u, hex, randomBytes } from "../../src/crypto/bytes.js";
import { Secret } from "../../src/crypto/secret.js";
import { eccStorageTemplate, SRK_ATTRIBUTES_TPM2_TOOLS } from "../../src/protect/templates.js";
import {
  PcrMismatchError,
  policyPcrDigest,
  sealToTpm,
  TPM_SEAL_FORMAT,
  type TpmSealRecord,
  unsealFromTpm,
} from "../../src/protect/tpm-seal.js";
import { TpmClient } from "../../src/tpm/client.js";
import { createPrimary } from "../../src/tpm/commands/create-primary.js";
import { flushContext } from "../../src/tpm/commands/flush-context.js";
import { pcrExtend } from "../../src/tpm/commands/pcr-extend.js";
import { pcrRead } from "../../src/tpm/commands/pcr-read.js";
import { TPM_ALG, TPM_RH } from "../../src/tpm/constants.js";
import { TpmError } from "../../src/tpm/rc.js";
import { SwtpmTransport } from "../../src/tpm/transport.js";
import { type Swtpm, skipSwtpm, skipTpm2Tools, startSwtpm } from "../helpers/swtpm.js";

const run = promisify(execFile);

describe.skipIf(skipSwtpm)("TPM seal (swtpm)", () => {
  let swtpm: Swtpm;
  let tpm: TpmClient;

  beforeAll(async () => {
    swtpm = await startSwtpm();
    tpm = new TpmClient(new SwtpmTransport({ host: "127.0.0.1", port: swtpm.port }));
  });

  afterAll(async () => {
    await tpm?.close();
    await swtpm?.destroy();
  });

  it("seals and unseals a root key; the policy digest is PolicyPCR over the values read", async () => {
    const secret = randomBytes(32);
    const record = await sealToTpm(tpm, Secret.of(secret.slice()), { pcrs: [7] });
    expect(record.format).toBe(TPM_SEAL_FORMAT);
    const values = await tpm.exclusive((x) => pcrRead(x, TPM_ALG.SHA256, [7]));
    expect(record.policyDigest).toBe(
      hex.encode(policyPcrDigest({ hash: TPM_ALG.SHA256, pcrs: [7] }, values)),
    );
    const opened = await unsealFromTpm(tpm, record);
    expect(opened.reveal()).toEqual(secret);
    opened.dispose();
  });

  it("with PolicyAuthValue, opens only with the authValue", async () => {
    const auth = Uint8Array.from([1, 2, 3, 4]);
    const record = await sealToTpm(tpm, Secret.of(new Uint8Array(32).fill(3)), {
      pcrs: [7],
      authValue: auth,
    });
    expect(record.authValueRequired).toBe(true);
    const opened = await unsealFromTpm(tpm, record, auth);
    expect(opened.reveal()).toEqual(new Uint8Array(32).fill(3));
    await expect(unsealFromTpm(tpm, record, Uint8Array.from([9]))).rejects.toBeInstanceOf(TpmError);
    await expect(unsealFromTpm(tpm, record)).rejects.toThrow(/needs its authValue/);
  });

  it("after a PCR extend the seal refuses and names the PCR that changed", async () => {
    const record = await sealToTpm(tpm, Secret.random(32), { pcrs: [7, 23] });
    await tpm.exclusive((x) => pcrExtend(x, 23, randomBytes(32)));
    const err = await unsealFromTpm(tpm, record).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PcrMismatchError);
    expect((err as PcrMismatchError).changed).toEqual([23]);
    expect((err as Error).message).toMatch(/PCR 23 changed.*custodians must unseal/);
  });

  it("a record from another TPM is refused by SRK name before anything is loaded", async () => {
    const record = await sealToTpm(tpm, Secret.random(32), { pcrs: [7] });
    const forged: TpmSealRecord = { ...record, srkName: `000b${"00".repeat(32)}` };
    await expect(unsealFromTpm(tpm, forged)).rejects.toThrow(/not the one the root key was sealed under/);
  });

  describe.skipIf(skipTpm2Tools)("interoperability with tpm2-tools", () => {
    // swtpm serves one connection at a time, and without a resource manager
    // tpm2-tools leave their objects loaded: flush after every tool.
    const tools = async (cmd: string, args: string[]) => {
      await tpm.transport.close();
      const opts = { env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti }, cwd: swtpm.dir };
      const out = await run(cmd, args, opts);
      await run("tpm2_flushcontext", ["-t"], opts);
      return out;
    };
    const srkArgs = () => [
      "-C",
      "o",
      "-g",
      "sha256",
      "-G",
      "ecc256:aes128cfb",
      "-a",
      SRK_ATTRIBUTES_TPM2_TOOLS,
      "-c",
      "srk.ctx",
    ];

    it("tpm2-tools makes the same SRK (same name)", async () => {
      await tools("tpm2_createprimary", srkArgs());
      await tools("tpm2_readpublic", ["-c", "srk.ctx", "-n", "srk.name"]);
      const ours = await tpm.exclusive(async (x) => {
        const srk = await createPrimary(x, {
          hierarchy: TPM_RH.OWNER,
          auth: { kind: "password", authValue: new Uint8Array(0) },
          template: eccStorageTemplate(),
        });
        await flushContext(x, srk.handle);
        return srk.name;
      });
      expect(hex.encode(readFileSync(join(swtpm.dir, "srk.name")))).toBe(hex.encode(ours));
    });

    it("custos seals, tpm2_load + tpm2_unseal with the same PCR policy opens it", async () => {
      const secret = randomBytes(32);
      const record = await sealToTpm(tpm, Secret.of(secret.slice()), { pcrs: [7] });
      const tpm2b = (b64: string) => {
        const body = b64u.decode(b64, "blob");
        return Buffer.concat([Buffer.from([body.length >> 8, body.length & 0xff]), body]);
      };
      writeFileSync(join(swtpm.dir, "seal.pub"), tpm2b(record.public));
      writeFileSync(join(swtpm.dir, "seal.priv"), tpm2b(record.private));
      await tools("tpm2_createprimary", srkArgs());
      await tools("tpm2_load", ["-C", "srk.ctx", "-u", "seal.pub", "-r", "seal.priv", "-c", "seal.ctx"]);
      const { stdout } = await run(
        "tpm2_unseal",
        ["-c", "seal.ctx", "-p", "pcr:sha256:7", "-o", "unsealed.bin"],
        {
          env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti },
          cwd: swtpm.dir,
        },
      );
      await tools("tpm2_flushcontext", ["-t"]);
      expect(stdout).toBe("");
      expect(new Uint8Array(readFileSync(join(swtpm.dir, "unsealed.bin")))).toEqual(secret);
    });

    it("tpm2_create -i seals, custos opens it with PolicyPCR", async () => {
      const secret = randomBytes(32);
      writeFileSync(join(swtpm.dir, "secret.bin"), secret);
      await tools("tpm2_createpolicy", ["--policy-pcr", "-l", "sha256:7", "-L", "pcr.policy"]);
      await tools("tpm2_createprimary", srkArgs());
      await tools("tpm2_create", [
        "-C",
        "srk.ctx",
        "-i",
        "secret.bin",
        "-L",
        "pcr.policy",
        "-u",
        "their.pub",
        "-r",
        "their.priv",
      ]);
      await tools("tpm2_flushcontext", ["-t"]);
      const strip = (f: string) => b64u.encode(new Uint8Array(readFileSync(join(swtpm.dir, f))).subarray(2));
      const ours = await sealToTpm(tpm, Secret.random(32), { pcrs: [7] }); // for the SRK name and PCR values
      const record: TpmSealRecord = {
        ...ours,
        policyDigest: hex.encode(readFileSync(join(swtpm.dir, "pcr.policy"))),
        public: strip("their.pub"),
        private: strip("their.priv"),
      };
      const opened = await unsealFromTpm(tpm, record);
      expect(opened.reveal()).toEqual(secret);
    });
  });
});
