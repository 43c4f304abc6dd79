/**
 * Our codecs against another implementation: tpm2-tools (tpm2-tss) writes
 * TPM2B_PUBLIC / TPMT_PUBLIC files, object names, PCR values, a cpHash over
 * a TPML_PCR_SELECTION and a PolicyPCR digest; we parse theirs, compute ours
 * and compare byte for byte. swtpm serves one TCP client at a time, so our
 * client connects only between tool runs and closes before the next one.
 * Without a resource manager the tools leave what they load in the TPM, so
 * each step flushes after them.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { sha256 } from "@noble/hashes/sha2.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { concatBytes, u32be } from "../../src/crypto/bytes.js";
import type { TpmClient } from "../../src/tpm/client.js";
import { createPrimary } from "../../src/tpm/commands/create-primary.js";
import { evictControl } from "../../src/tpm/commands/evict-control.js";
import { flushContext } from "../../src/tpm/commands/flush-context.js";
import { getHandles } from "../../src/tpm/commands/get-capability.js";
import { pcrRead } from "../../src/tpm/commands/pcr-read.js";
import { policyGetDigest } from "../../src/tpm/commands/policy-get-digest.js";
import { policyPcr } from "../../src/tpm/commands/policy-pcr.js";
import { readPublicArea } from "../../src/tpm/commands/read-public.js";
import { startAuthSession } from "../../src/tpm/commands/start-auth-session.js";
import { TPM_ALG, TPM_CC, TPM_RH } from "../../src/tpm/constants.js";
import { marshal, unmarshal } from "../../src/tpm/marshal.js";
import {
  marshalPublic,
  objectName,
  readPublic,
  readPublic2b,
  writePcrSelections,
  writePublic2b,
} from "../../src/tpm/structures.js";
import { type Swtpm, skipTpm2Tools, startSwtpm } from "../helpers/swtpm.js";
import { connect, EMPTY, eccStorageTemplate, flushAll, hex, password } from "./support.js";

const run = promisify(execFile);
const PERSISTENT = 0x8100_0001;

describe.skipIf(skipTpm2Tools)("structures checked against tpm2-tools", () => {
  let sw: Swtpm;
  let dir: string;
  const file = (name: string) => join(dir, name);
  const read = (name: string) => new Uint8Array(readFileSync(file(name)));

  async function tool(cmd: string, ...args: string[]): Promise<string> {
    const { stdout } = await run(cmd, args, { env: { ...process.env, TPM2TOOLS_TCTI: sw.tcti }, cwd: dir });
    return stdout;
  }

  /** Our client, between tool runs: flushes what the tools left, runs `fn`, flushes again and disconnects. */
  async function withClient<T>(fn: (tpm: TpmClient) => Promise<T>): Promise<T> {
    const tpm = connect(sw.port);
    try {
      await flushAll(tpm);
      return await fn(tpm);
    } finally {
      await flushAll(tpm).catch(() => {});
      await tpm.close();
    }
  }

  beforeAll(async () => {
    sw = await startSwtpm();
    dir = mkdtempSync(join(tmpdir(), "custos-tpm2-tools-"));
    await tool("tpm2_createprimary", "-C", "o", "-g", "sha256", "-G", "ecc", "-c", "prim.ctx");
    await tool("tpm2_readpublic", "-c", "prim.ctx", "-o", "pub.tss", "-f", "tss", "-n", "name.bin");
    await tool("tpm2_flushcontext", "-t");
    await tool("tpm2_readpublic", "-c", "prim.ctx", "-o", "pub.tpmt", "-f", "tpmt");
    await tool("tpm2_flushcontext", "-t");
  });

  afterAll(async () => {
    await sw?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("readPublic2b parses tpm2-tools' TPM2B_PUBLIC, and writePublic2b writes the same bytes back", () => {
    const tss = read("pub.tss");
    const { pub, bytes } = unmarshal(tss, "pub.tss", (r) => readPublic2b(r));
    expect(pub.type).toBe("ecc");
    if (pub.type !== "ecc") return;
    expect(pub.nameAlg).toBe(TPM_ALG.SHA256);
    expect(pub.symmetric).toEqual({ algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB });
    expect(pub.unique.x).toHaveLength(32);
    expect(pub.unique.y).toHaveLength(32);
    expect(hex(marshal((w) => writePublic2b(w, pub)))).toBe(hex(tss));
    expect(hex(bytes)).toBe(hex(tss.subarray(2)));
  });

  it("readPublic parses tpm2-tools' TPMT_PUBLIC, marshalPublic is byte-identical, objectName equals its name", () => {
    const tpmt = read("pub.tpmt");
    const pub = unmarshal(tpmt, "pub.tpmt", (r) => readPublic(r));
    expect(hex(marshalPublic(pub))).toBe(hex(tpmt));
    const name = read("name.bin");
    expect(name).toHaveLength(34);
    expect(hex(objectName(tpmt))).toBe(hex(name));
    // Both files describe the same object.
    expect(hex(read("pub.tss").subarray(2))).toBe(hex(tpmt));
  });

  it("our CreatePrimary with tpm2-tools' template (unique emptied) makes the same owner key: same name", async () => {
    const pub = unmarshal(read("pub.tpmt"), "pub.tpmt", (r) => readPublic(r));
    if (pub.type !== "ecc") throw new Error("expected ECC");
    const template = { ...pub, unique: { x: EMPTY, y: EMPTY } };
    // The tools' default is the SRK template without noDA; ours differs only there.
    expect(template.objectAttributes).toBe(eccStorageTemplate().objectAttributes & ~0x400);
    const ours = await withClient(async (tpm) => {
      const o = await createPrimary(tpm, { hierarchy: TPM_RH.OWNER, auth: password(), template });
      await flushContext(tpm, o.handle);
      return o;
    });
    expect(hex(ours.name)).toBe(hex(read("name.bin")));
    expect(hex(ours.publicBytes)).toBe(hex(read("pub.tpmt")));
  });

  it("tpm2_evictcontrol persists it; our ReadPublic reads the same bytes and name; our EvictControl removes it", async () => {
    await tool("tpm2_evictcontrol", "-C", "o", "-c", "prim.ctx", `0x${PERSISTENT.toString(16)}`);
    await withClient(async (tpm) => {
      const p = await readPublicArea(tpm, PERSISTENT);
      expect(hex(p.publicBytes)).toBe(hex(read("pub.tpmt")));
      expect(hex(p.name)).toBe(hex(read("name.bin")));
      await evictControl(tpm, password(), p, PERSISTENT);
      expect((await getHandles(tpm, 0x8100_0000, 64)).handles).not.toContain(PERSISTENT);
    });
    expect(await tool("tpm2_getcap", "handles-persistent")).not.toMatch(/0x81000001/);
  });

  it("PCR 7 after tpm2_pcrextend: tpm2_pcrread's value equals our PCR_Read's", async () => {
    const digest = hex(sha256(new TextEncoder().encode("custos interop")));
    await tool("tpm2_pcrextend", `7:sha256=${digest}`);
    await tool("tpm2_pcrread", "sha256:7", "-o", "pcr7.bin");
    const ours = await withClient((tpm) => pcrRead(tpm, TPM_ALG.SHA256, [7]));
    const theirs = read("pcr7.bin");
    expect(theirs).toHaveLength(32);
    expect(hex(theirs)).not.toBe("00".repeat(32));
    expect(hex(ours.get(7) as Uint8Array)).toBe(hex(theirs));
  });

  it("tpm2-tools' cpHash of PCR_Read(sha256:7) is H(TPM_CC_PCR_Read ‖ our TPML_PCR_SELECTION)", async () => {
    await tool("tpm2_pcrread", "sha256:7", "--cphash=cp.bin");
    const cp = read("cp.bin");
    const selection = marshal((w) => writePcrSelections(w, [{ hash: TPM_ALG.SHA256, pcrs: [7] }]));
    expect(hex(selection)).toBe("00000001000b03800000");
    expect(hex(cp)).toBe(
      hex(concatBytes(Uint8Array.of(0, 32), sha256(concatBytes(u32be(TPM_CC.PCR_Read), selection)))),
    );
  });

  it("tpm2_createpolicy --policy-pcr -l sha256:7 equals our trial session's PolicyPCR + PolicyGetDigest", async () => {
    await tool("tpm2_createpolicy", "--policy-pcr", "-l", "sha256:7", "-L", "policy.dat");
    const theirs = read("policy.dat");
    const ours = await withClient(async (tpm) => {
      const srk = await createPrimary(tpm, {
        hierarchy: TPM_RH.NULL,
        auth: password(),
        template: eccStorageTemplate(),
      });
      try {
        const trial = await startAuthSession(tpm, srk, "trial");
        try {
          await policyPcr(tpm, trial, [{ hash: TPM_ALG.SHA256, pcrs: [7] }]);
          return await policyGetDigest(tpm, trial);
        } finally {
          await flushContext(tpm, trial.handle);
        }
      } finally {
        await flushContext(tpm, srk.handle);
      }
    });
    expect(theirs).toHaveLength(32);
    expect(hex(ours)).toBe(hex(theirs));
  });
});
