/**
 * The TPM protection level against a real swtpm: keys imported into the TPM
 * compute the same HMAC as in software, ciphertexts move between protection
 * levels unchanged, more keys than the TPM has object slots still work, and a
 * stopped or reset TPM is reported, not papered over.
 */
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "../../src/crypto/bytes.js";
import { unwrap, wrap } from "../../src/crypto/envelope.js";
import { SoftwareKeyHandle } from "../../src/crypto/key-handle.js";
import { Secret } from "../../src/crypto/secret.js";
import { TpmKeys, TpmResetError } from "../../src/protect/tpm.js";
import { TpmClient } from "../../src/tpm/client.js";
import { TpmUnavailableError } from "../../src/tpm/rc.js";
import { SwtpmTransport } from "../../src/tpm/transport.js";
import { type Swtpm, skipSwtpm, startSwtpm } from "../helpers/swtpm.js";

describe.skipIf(skipSwtpm)("TPM protection level (swtpm)", () => {
  let swtpm: Swtpm;
  let keys: TpmKeys;
  const sent: Uint8Array[] = [];

  beforeAll(async () => {
    swtpm = await startSwtpm();
    const client = new TpmClient(
      new SwtpmTransport({ host: "127.0.0.1", port: swtpm.port, timeoutMs: 2000 }),
      {
        tap: (cmd, res) => sent.push(cmd, res),
      },
    );
    keys = new TpmKeys(client);
    await keys.start();
  });

  afterAll(async () => {
    await keys?.close();
    await swtpm?.destroy();
  });

  it("prf is HMAC-SHA-256 of the key, computed by the TPM, and the key bytes never cross the bus", async () => {
    const bytes = randomBytes(32);
    const copy = bytes.slice();
    const handle = await keys.importKey(Secret.of(bytes));
    expect(bytes.every((b) => b === 0)).toBe(true); // zeroed once the TPM holds it
    for (const len of [0, 1, 78, 1024]) {
      const input = randomBytes(len);
      const out = await handle.prf(input);
      expect(Buffer.from(out).toString("hex")).toBe(createHmac("sha256", copy).update(input).digest("hex"));
      const outHex = Buffer.from(out).toString("hex");
      expect(sent.some((b) => Buffer.from(b).toString("hex").includes(outHex))).toBe(false);
    }
    const keyHex = Buffer.from(copy).toString("hex");
    expect(sent.some((b) => Buffer.from(b).toString("hex").includes(keyHex))).toBe(false);
    await expect(handle.prf(new Uint8Array(1025))).rejects.toThrow(RangeError);
    handle.dispose();
  });

  it("a blob wrapped at the SOFTWARE level unwraps at the TPM level and back, byte for byte the same format", async () => {
    const material = randomBytes(32);
    const soft = new SoftwareKeyHandle(Secret.of(material.slice()));
    const tpmKey = await keys.importKey(Secret.of(material.slice()));
    const context = { institution: "nyu", patient_id: "MRN-1" };
    const dek = randomBytes(32);
    const bySoft = await wrap(soft, "nyu-ehr-notes", 1, dek, context);
    const byTpm = await wrap(tpmKey, "nyu-ehr-notes", 1, dek, context);
    expect(await unwrap(tpmKey, bySoft, context)).toEqual(dek);
    expect(await unwrap(soft, byTpm, context)).toEqual(dek);
    tpmKey.dispose();
    soft.dispose();
  });

  it("serves more keys than the TPM has object slots, concurrently", async () => {
    const materials = Array.from({ length: 6 }, () => randomBytes(32));
    const handles = await Promise.all(materials.map((m) => keys.importKey(Secret.of(m.slice()))));
    const input = randomBytes(40);
    const outs = await Promise.all(
      Array.from({ length: 30 }, (_, i) => handles[i % handles.length]?.prf(input) as Promise<Uint8Array>),
    );
    outs.forEach((out, i) => {
      const m = materials[i % materials.length] as Uint8Array;
      expect(Buffer.from(out).toString("hex")).toBe(createHmac("sha256", m).update(input).digest("hex"));
    });
    for (const h of handles) h.dispose();
  });

  it("a stopped TPM is TpmUnavailableError within the timeout; after a TPM reset the keys are gone and listeners hear it", async () => {
    const handle = await keys.importKey(Secret.random(32));
    await handle.prf(new Uint8Array(8));
    const resets: string[] = [];
    keys.onReset((why) => resets.push(why));
    await swtpm.stop();
    const started = Date.now();
    await expect(handle.prf(new Uint8Array(8))).rejects.toBeInstanceOf(TpmUnavailableError);
    expect(Date.now() - started).toBeLessThan(5000);
    await swtpm.restart();
    await expect(handle.prf(new Uint8Array(8))).rejects.toBeInstanceOf(TpmResetError);
    expect(resets).toHaveLength(1);
    // New keys work again on the new NULL hierarchy.
    const fresh = await keys.importKey(Secret.of(new Uint8Array(32).fill(5)));
    expect(Buffer.from(await fresh.prf(new Uint8Array(3))).toString("hex")).toBe(
      createHmac("sha256", new Uint8Array(32).fill(5)).update(new Uint8Array(3)).digest("hex"),
    );
    fresh.dispose();
  });
});
