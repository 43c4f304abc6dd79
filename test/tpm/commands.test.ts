/**
 * Every TPM command the client implements, against a real swtpm. One salted
 * HMAC session and one ECC storage primary are shared by the file; anything
 * else a test loads it flushes in `finally`, and afterEach checks the TPM
 * holds nothing more (a leak fails the test that leaked).
 */
import { createHmac } from "node:crypto";
import { sha256 } from "@noble/hashes/sha2.js";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { concatBytes, u32be } from "../../src/crypto/bytes.js";
import { TpmClient } from "../../src/tpm/client.js";
import { type Authorization, TpmResponseAuthError } from "../../src/tpm/command.js";
import { create } from "../../src/tpm/commands/create.js";
import { createPrimary } from "../../src/tpm/commands/create-primary.js";
import { evictControl } from "../../src/tpm/commands/evict-control.js";
import { flushContext } from "../../src/tpm/commands/flush-context.js";
import { getHandles, getProperties } from "../../src/tpm/commands/get-capability.js";
import { getRandom } from "../../src/tpm/commands/get-random.js";
import { hmac } from "../../src/tpm/commands/hmac.js";
import { load } from "../../src/tpm/commands/load.js";
import { pcrExtend } from "../../src/tpm/commands/pcr-extend.js";
import { pcrRead } from "../../src/tpm/commands/pcr-read.js";
import { policyAuthValue } from "../../src/tpm/commands/policy-auth-value.js";
import { policyGetDigest } from "../../src/tpm/commands/policy-get-digest.js";
import { policyPcr } from "../../src/tpm/commands/policy-pcr.js";
import { readPublicArea } from "../../src/tpm/commands/read-public.js";
import { startAuthSession } from "../../src/tpm/commands/start-auth-session.js";
import { startup } from "../../src/tpm/commands/startup.js";
import { unseal } from "../../src/tpm/commands/unseal.js";
import { TPM_ALG, TPM_CC, TPM_PT, TPM_RH, TPM_SU } from "../../src/tpm/constants.js";
import { TpmFormatError } from "../../src/tpm/marshal.js";
import type { LoadedObject } from "../../src/tpm/object.js";
import { TpmError } from "../../src/tpm/rc.js";
import type { AuthSession } from "../../src/tpm/session.js";
import type { PcrSelection } from "../../src/tpm/structures.js";
import type { Transport } from "../../src/tpm/transport.js";
import { type Swtpm, skipSwtpm, startSwtpm } from "../helpers/swtpm.js";
import {
  connect,
  EMPTY,
  eccStorageTemplate,
  flushAll,
  hex,
  hmacKeyTemplate,
  loadedHandles,
  password,
  sealTemplate,
} from "./support.js";

/**
 * A PCR the tests own. Not 16–23: a PC-client TPM does not count their
 * extends in pcrUpdateCounter (TPM_PT_PCR_NO_INCREMENT), so a policy session
 * would not see them change (no PCR_CHANGED) — found by the PCR_Extend test.
 */
const PCR = 8;
const SEL: PcrSelection[] = [{ hash: TPM_ALG.SHA256, pcrs: [PCR] }];

/** The error a promise rejects with, failing the test if it resolves. */
async function rejection(p: Promise<unknown>): Promise<TpmError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(TpmError);
    return err as TpmError;
  }
  throw new Error("expected the TPM to refuse the command");
}

describe.skipIf(skipSwtpm)("TPM commands against swtpm", () => {
  let sw: Swtpm;
  let tpm: TpmClient;
  let srk: LoadedObject;
  let s: AuthSession;
  /** Commands that crossed the wire, retries included (the client's tap sees each attempt). */
  let sends = 0;
  const shared = () => [srk.handle, s.handle];
  const viaS = (authValue: Uint8Array = EMPTY): Authorization => ({ kind: "session", session: s, authValue });

  beforeAll(async () => {
    sw = await startSwtpm();
    tpm = connect(sw.port, { tap: () => sends++ });
    srk = await createPrimary(tpm, {
      hierarchy: TPM_RH.NULL,
      auth: password(),
      template: eccStorageTemplate(),
    });
    s = await startAuthSession(tpm, srk, "hmac");
  });

  afterEach(async () => {
    const leaked = (await loadedHandles(tpm)).filter((h) => !shared().includes(h));
    for (const h of leaked) await flushContext(tpm, h);
    expect(leaked.map((h) => h.toString(16))).toEqual([]);
  });

  afterAll(async () => {
    if (tpm) await flushAll(tpm).catch(() => {});
    await tpm?.close();
    await sw?.destroy();
  });

  /** Creates and loads a keyed-hash object under the shared primary; the caller flushes it. */
  async function createLoaded(
    template: Parameters<typeof create>[1]["template"],
    sensitive: { userAuth: Uint8Array; data: Uint8Array },
  ): Promise<LoadedObject> {
    const created = await create(tpm, { parent: srk, auth: viaS(), template, sensitive, encryptWith: s });
    return load(tpm, {
      parent: srk,
      auth: viaS(),
      private: created.private,
      publicBytes: created.publicBytes,
    });
  }

  /** The policy digest of PolicyPCR(SEL) [+ PolicyAuthValue], from a trial session on the TPM. */
  async function trialPolicy(withAuthValue: boolean): Promise<Uint8Array> {
    const trial = await startAuthSession(tpm, srk, "trial");
    try {
      await policyPcr(tpm, trial, SEL);
      if (withAuthValue) await policyAuthValue(tpm, trial);
      return await policyGetDigest(tpm, trial);
    } finally {
      await flushContext(tpm, trial.handle);
    }
  }

  /** Runs `fn` with a fresh policy session and flushes it after (swtpm holds only 3 sessions). */
  async function withPolicySession<T>(
    withAuthValue: boolean,
    fn: (ps: AuthSession) => Promise<T>,
  ): Promise<T> {
    const ps = await policySession(withAuthValue);
    try {
      return await fn(ps);
    } finally {
      await flushContext(tpm, ps.handle);
    }
  }

  async function policySession(withAuthValue: boolean): Promise<AuthSession> {
    const ps = await startAuthSession(tpm, srk, "policy");
    await policyPcr(tpm, ps, SEL);
    if (withAuthValue) await policyAuthValue(tpm, ps);
    return ps;
  }

  it("TPM2_Startup on a started TPM answers INITIALIZE, which startup() reports as false", async () => {
    expect(await startup(tpm, TPM_SU.CLEAR)).toBe(false);
  });

  it("TPM2_GetCapability(TPM_PROPERTIES): room for at least 3 transient objects, a 1024-byte input buffer", async () => {
    const { properties } = await getProperties(tpm, TPM_PT.MANUFACTURER, 32);
    expect(properties.get(TPM_PT.HR_TRANSIENT_MIN)).toBeGreaterThanOrEqual(3);
    expect(properties.get(TPM_PT.INPUT_BUFFER)).toBeGreaterThanOrEqual(1024);
    expect(properties.get(TPM_PT.MAX_DIGEST)).toBeGreaterThanOrEqual(32);
    const one = await getProperties(tpm, TPM_PT.HR_TRANSIENT_MIN, 1);
    expect([...one.properties.keys()]).toEqual([TPM_PT.HR_TRANSIENT_MIN]);
  });

  it("TPM2_GetCapability(HANDLES) lists a transient object while it is loaded and not after FlushContext", async () => {
    const before = await getHandles(tpm, 0x8000_0000, 64);
    expect(before.handles).toContain(srk.handle);
    const obj = await createPrimary(tpm, {
      hierarchy: TPM_RH.NULL,
      auth: password(),
      template: hmacKeyTemplateOrigin(),
    });
    try {
      expect((await getHandles(tpm, 0x8000_0000, 64)).handles).toContain(obj.handle);
    } finally {
      await flushContext(tpm, obj.handle);
    }
    expect((await getHandles(tpm, 0x8000_0000, 64)).handles).not.toContain(obj.handle);
    // And a loaded session shows in the HMAC session range.
    expect((await getHandles(tpm, 0x0200_0000, 64)).handles).toContain(s.handle);
  });

  it("TPM2_FlushContext of a handle that is not loaded is TPM_RC_HANDLE on parameter 1", async () => {
    const obj = await createPrimary(tpm, {
      hierarchy: TPM_RH.NULL,
      auth: password(),
      template: hmacKeyTemplateOrigin(),
    });
    await flushContext(tpm, obj.handle);
    const e = await rejection(flushContext(tpm, obj.handle));
    expect(e.is("HANDLE")).toBe(true);
    expect(e.decoded.subject).toEqual({ kind: "parameter", index: 1 });
  });

  it("TPM2_GetRandom returns the bytes asked for (up to a digest), different each time", async () => {
    const a = await getRandom(tpm, 32);
    const b = await getRandom(tpm, 32);
    expect(a).toHaveLength(32);
    expect(hex(a)).not.toBe(hex(b));
    expect(await getRandom(tpm, 5)).toHaveLength(5);
    const big = await getRandom(tpm, 64);
    expect(big.length).toBeGreaterThan(0);
    expect(big.length).toBeLessThanOrEqual(64);
  });

  it("TPM2_CreatePrimary under NULL and OWNER: the same template gives the same key in a hierarchy, another in the other", async () => {
    const made: number[] = [];
    try {
      const owner1 = await createPrimary(tpm, {
        hierarchy: TPM_RH.OWNER,
        auth: password(),
        template: eccStorageTemplate(),
      });
      made.push(owner1.handle);
      const owner2 = await createPrimary(tpm, {
        hierarchy: TPM_RH.OWNER,
        auth: password(),
        template: eccStorageTemplate(),
      });
      made.push(owner2.handle);
      expect(owner1.handle).not.toBe(owner2.handle);
      expect(hex(owner1.name)).toBe(hex(owner2.name));
      expect(hex(srk.name)).not.toBe(hex(owner1.name));
      for (const k of [owner1, srk]) {
        if (k.pub.type !== "ecc") throw new Error("expected an ECC key");
        expect(k.pub.unique.x).toHaveLength(32);
        expect(k.pub.unique.y).toHaveLength(32);
      }
      // ReadPublic agrees with what CreatePrimary returned.
      const read = await readPublicArea(tpm, owner1.handle);
      expect(hex(read.publicBytes)).toBe(hex(owner1.publicBytes));
      expect(hex(read.name)).toBe(hex(owner1.name));
    } finally {
      for (const h of made) await flushContext(tpm, h);
    }
  });

  it("Create, Load, HMAC: the TPM's HMAC equals node:crypto's for the same key bytes (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 32 }),
        async (key, data, auth) => {
          const obj = await createLoaded(hmacKeyTemplate(), { userAuth: auth, data: key });
          try {
            expect(hex(obj.name)).toBe(hex(concatBytes(Uint8Array.of(0, 0x0b), sha256(obj.publicBytes))));
            const out = await hmac(tpm, obj, viaS(auth), data, s);
            expect(hex(out)).toBe(createHmac("sha256", key).update(data).digest("hex"));
          } finally {
            await flushContext(tpm, obj.handle);
          }
        },
      ),
      { numRuns: 5 },
    );
  });

  it("CreatePrimary with a password and a separate session encrypting inSensitive: the new key's authValue takes effect", async () => {
    const auth = new TextEncoder().encode("primary-auth");
    const key = await createPrimary(tpm, {
      hierarchy: TPM_RH.NULL,
      auth: password(),
      template: hmacKeyTemplateOrigin(),
      sensitive: { userAuth: auth, data: EMPTY },
      encryptWith: s,
    });
    try {
      const mac = await hmac(tpm, key, password(auth), Uint8Array.of(1), s);
      expect(mac).toHaveLength(32);
      expect(hex(await hmac(tpm, key, viaS(auth), Uint8Array.of(1), s))).toBe(hex(mac));
      const e = await rejection(hmac(tpm, key, password(EMPTY), Uint8Array.of(1), s));
      expect(e.is("BAD_AUTH")).toBe(true);
      expect(e.decoded.subject).toEqual({ kind: "session", index: 1 });
    } finally {
      await flushContext(tpm, key.handle);
    }
  });

  it("TPM2_HMAC with a wrong authValue is TPM_RC_BAD_AUTH on session 1, and the session still works after", async () => {
    const auth = Uint8Array.of(1, 2, 3, 4);
    const obj = await createLoaded(hmacKeyTemplate(), { userAuth: auth, data: new Uint8Array(32).fill(3) });
    try {
      const e = await rejection(hmac(tpm, obj, viaS(Uint8Array.of(1, 2, 3, 5)), EMPTY, s));
      expect(e.rc).toBe(0x9a2);
      expect(e.is("BAD_AUTH")).toBe(true);
      expect(e.decoded.subject).toEqual({ kind: "session", index: 1 });
      expect(e.retryable).toBe(false);
      expect(e.message).toMatch(/TPM2_HMAC: TPM error TPM_RC_BAD_AUTH \(session 1\)/);
      const out = await hmac(tpm, obj, viaS(auth), Uint8Array.of(9), s);
      expect(hex(out)).toBe(
        createHmac("sha256", new Uint8Array(32).fill(3)).update(Uint8Array.of(9)).digest("hex"),
      );
    } finally {
      await flushContext(tpm, obj.handle);
    }
  });

  it("PolicyPCR: the trial digest equals the spec's formula over PCR_Read's value", async () => {
    const value = (await pcrRead(tpm, TPM_ALG.SHA256, [PCR])).get(PCR) as Uint8Array;
    // Part 3 §23.7: policyDigest' = H(policyDigest ‖ TPM_CC_PolicyPCR ‖ pcrs ‖ H(PCR values)).
    const selection = Uint8Array.of(0, 0, 0, 1, 0x00, 0x0b, 3, 0x00, 0x01, 0x00); // sha256, PCR 8
    const expected = sha256(
      concatBytes(new Uint8Array(32), u32be(TPM_CC.PolicyPCR), selection, sha256(value)),
    );
    expect(hex(await trialPolicy(false))).toBe(hex(expected));
    // Part 3 §23.17: PolicyAuthValue extends it with H(… ‖ TPM_CC_PolicyAuthValue).
    const withAuth = sha256(concatBytes(expected, u32be(TPM_CC.PolicyAuthValue)));
    expect(hex(await trialPolicy(true))).toBe(hex(withAuth));
  });

  it("Unseal under a policy session (PolicyPCR) returns the sealed data, the response encrypted by that session", async () => {
    const data = new Uint8Array(32).map((_, i) => 0xa0 ^ i);
    const obj = await createLoaded(sealTemplate(await trialPolicy(false), false), { userAuth: EMPTY, data });
    const ps = await policySession(false);
    try {
      const got = await unseal(tpm, obj, { kind: "session", session: ps, authValue: EMPTY }, ps);
      expect(hex(got)).toBe(hex(data));
      // Without userWithAuth the object's authValue alone (a password) may not stand in for the policy.
      const e = await rejection(unseal(tpm, obj, password(), s));
      expect(e.is("AUTH_UNAVAILABLE")).toBe(true);
    } finally {
      await flushContext(tpm, ps.handle);
      await flushContext(tpm, obj.handle);
    }
  });

  it("Unseal authorized by a policy session but encrypted by another session (the HMAC then covers its nonce)", async () => {
    const data = new Uint8Array(32).fill(0x42);
    const obj = await createLoaded(sealTemplate(await trialPolicy(false), false), { userAuth: EMPTY, data });
    const ps = await policySession(false);
    try {
      expect(hex(await unseal(tpm, obj, { kind: "session", session: ps, authValue: EMPTY }, s))).toBe(
        hex(data),
      );
    } finally {
      await flushContext(tpm, ps.handle);
      await flushContext(tpm, obj.handle);
    }
  });

  it("PCR_Extend changes PCR_Read to H(old ‖ digest); Unseal then fails: PCR_CHANGED in a session that ran PolicyPCR before, POLICY_FAIL in a new one", async () => {
    const data = new Uint8Array(32).fill(0x17);
    const obj = await createLoaded(sealTemplate(await trialPolicy(false), false), { userAuth: EMPTY, data });
    const before = await policySession(false);
    let after: AuthSession | undefined;
    try {
      const old = (await pcrRead(tpm, TPM_ALG.SHA256, [PCR])).get(PCR) as Uint8Array;
      const digest = sha256(new TextEncoder().encode("custos test measurement"));
      await pcrExtend(tpm, PCR, digest);
      const now = (await pcrRead(tpm, TPM_ALG.SHA256, [PCR])).get(PCR) as Uint8Array;
      expect(hex(now)).toBe(hex(sha256(concatBytes(old, digest))));

      const changed = await rejection(
        unseal(tpm, obj, { kind: "session", session: before, authValue: EMPTY }, before),
      );
      expect(changed.is("PCR_CHANGED")).toBe(true);

      after = await policySession(false);
      const fail = await rejection(
        unseal(tpm, obj, { kind: "session", session: after, authValue: EMPTY }, after),
      );
      expect(fail.is("POLICY_FAIL")).toBe(true);
      expect(fail.decoded.subject).toEqual({ kind: "session", index: 1 });
    } finally {
      await flushContext(tpm, before.handle);
      if (after) await flushContext(tpm, after.handle);
      await flushContext(tpm, obj.handle);
    }
  });

  it("PolicyPCR + PolicyAuthValue: Unseal needs the object's authValue in the session HMAC; a wrong one is BAD_AUTH", async () => {
    const userAuth = new TextEncoder().encode("correct horse");
    const data = new Uint8Array(32).fill(0x99);
    const obj = await createLoaded(sealTemplate(await trialPolicy(true), false), { userAuth, data });
    try {
      const wrong = new TextEncoder().encode("wrong horse");
      const e = await withPolicySession(true, (ps) =>
        rejection(unseal(tpm, obj, { kind: "session", session: ps, authValue: wrong }, ps)),
      );
      expect(e.is("BAD_AUTH")).toBe(true);
      expect(e.decoded.subject).toEqual({ kind: "session", index: 1 });

      // Without PolicyAuthValue the session's digest is not the object's policy.
      const e2 = await withPolicySession(false, (ps) =>
        rejection(unseal(tpm, obj, { kind: "session", session: ps, authValue: userAuth }, ps)),
      );
      expect(e2.is("POLICY_FAIL")).toBe(true);

      const got = await withPolicySession(true, (ps) =>
        unseal(tpm, obj, { kind: "session", session: ps, authValue: userAuth }, ps),
      );
      expect(hex(got)).toBe(hex(data));
    } finally {
      await flushContext(tpm, obj.handle);
    }
  });

  it("a policy session without PolicyAuthValue still keys its parameter encryption with the object's authValue", async () => {
    // Part 1 §21.1: sessionValue = sessionKey ‖ authValue whenever the session authorizes the entity.
    const userAuth = Uint8Array.of(5, 6, 7);
    const data = new Uint8Array(32).fill(0x5e);
    const obj = await createLoaded(sealTemplate(await trialPolicy(false), false), { userAuth, data });
    const ps = await policySession(false);
    try {
      expect(hex(await unseal(tpm, obj, { kind: "session", session: ps, authValue: userAuth }, ps))).toBe(
        hex(data),
      );
    } finally {
      await flushContext(tpm, ps.handle);
      await flushContext(tpm, obj.handle);
    }
  });

  it("EvictControl persists an owner primary at 0x81000100, ReadPublic reads it there, EvictControl removes it", async () => {
    const PERSISTENT = 0x8100_0100;
    const obj = await createPrimary(tpm, {
      hierarchy: TPM_RH.OWNER,
      auth: password(),
      template: eccStorageTemplate(),
    });
    let persisted = false;
    try {
      await evictControl(tpm, password(), obj, PERSISTENT);
      persisted = true;
      expect((await getHandles(tpm, 0x8100_0000, 64)).handles).toContain(PERSISTENT);
      const p = await readPublicArea(tpm, PERSISTENT);
      expect(hex(p.name)).toBe(hex(obj.name));
      expect(hex(p.publicBytes)).toBe(hex(obj.publicBytes));
      // A persistent object can be used like a loaded one: salt a session with it.
      const ps = await startAuthSession(tpm, p, "hmac");
      await flushContext(tpm, ps.handle);
      await evictControl(tpm, password(), p, PERSISTENT);
      persisted = false;
      expect((await getHandles(tpm, 0x8100_0000, 64)).handles).not.toContain(PERSISTENT);
    } finally {
      if (persisted) await evictControl(tpm, password(), await readPublicArea(tpm, PERSISTENT), PERSISTENT);
      await flushContext(tpm, obj.handle);
    }
  });

  it("EvictControl refuses a handle outside the owner persistent range before asking the TPM", async () => {
    await expect(evictControl(tpm, password(), srk, 0x8180_0000)).rejects.toThrow(RangeError);
  });

  it("pcrRead asks again until all 24 PCRs are answered (a TPM returns at most 8 digests per PCR_Read)", async () => {
    const all = await pcrRead(
      tpm,
      TPM_ALG.SHA256,
      Array.from({ length: 24 }, (_, i) => i),
    );
    expect([...all.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    for (const v of all.values()) expect(v).toHaveLength(32);
    const one = await pcrRead(tpm, TPM_ALG.SHA256, [PCR]);
    expect(hex(all.get(PCR) as Uint8Array)).toBe(hex(one.get(PCR) as Uint8Array));
  });

  it("startAuthSession refuses a salt key that is not an ECC P-256 key before asking the TPM", async () => {
    const before = sends;
    const notEcc = { ...srk, pub: hmacKeyTemplate() };
    await expect(startAuthSession(tpm, notEcc, "hmac")).rejects.toThrow(TpmFormatError);
    expect(sends).toBe(before);
  });

  it("TPM2_HMAC over a full TPM2B_MAX_BUFFER (1024 bytes) works; 1025 bytes is refused before it is sent", async () => {
    const key = new Uint8Array(32).fill(0x61);
    const obj = await createLoaded(hmacKeyTemplate(), { userAuth: EMPTY, data: key });
    try {
      const big = new Uint8Array(1024).map((_, i) => i & 0xff);
      expect(hex(await hmac(tpm, obj, viaS(), big, s))).toBe(
        createHmac("sha256", key).update(big).digest("hex"),
      );
      const before = sends;
      await expect(hmac(tpm, obj, viaS(), new Uint8Array(1025), s)).rejects.toThrow(TpmFormatError);
      expect(sends).toBe(before);
    } finally {
      await flushContext(tpm, obj.handle);
    }
  });

  it("an authValue's trailing zero bytes do not count, on the TPM's side and ours (Part 1 §19.6.4.3)", async () => {
    const obj = await createLoaded(hmacKeyTemplate(), {
      userAuth: Uint8Array.of(1, 2, 0, 0),
      data: new Uint8Array(32).fill(8),
    });
    try {
      const want = createHmac("sha256", new Uint8Array(32).fill(8)).update(Uint8Array.of(1)).digest("hex");
      for (const auth of [Uint8Array.of(1, 2, 0, 0), Uint8Array.of(1, 2), Uint8Array.of(1, 2, 0)]) {
        expect(hex(await hmac(tpm, obj, viaS(auth), Uint8Array.of(1), s))).toBe(want);
      }
      const e = await rejection(hmac(tpm, obj, viaS(Uint8Array.of(1, 2, 0, 1)), Uint8Array.of(1), s));
      expect(e.is("BAD_AUTH")).toBe(true);
    } finally {
      await flushContext(tpm, obj.handle);
    }
  });

  it("continueSession: false ends the session on the TPM and wipes it here; using it again is refused", async () => {
    const obj = await createLoaded(hmacKeyTemplate(), { userAuth: EMPTY, data: new Uint8Array(32).fill(4) });
    const once = await startAuthSession(tpm, srk, "hmac");
    try {
      const out = await hmac(
        tpm,
        obj,
        { kind: "session", session: once, authValue: EMPTY, continueSession: false },
        Uint8Array.of(2),
        once,
      );
      expect(hex(out)).toBe(
        createHmac("sha256", new Uint8Array(32).fill(4)).update(Uint8Array.of(2)).digest("hex"),
      );
      expect(once.closed).toBe(true);
      expect(await loadedHandles(tpm)).not.toContain(once.handle);
      await expect(
        hmac(tpm, obj, { kind: "session", session: once, authValue: EMPTY }, Uint8Array.of(2), once),
      ).rejects.toThrow(/is closed/);
    } finally {
      if (!once.closed) await flushContext(tpm, once.handle);
      await flushContext(tpm, obj.handle);
    }
  });

  it("a response altered on the way fails its session HMAC: TpmResponseAuthError, and the altered output is not returned", async () => {
    const obj = await createLoaded(hmacKeyTemplate(), { userAuth: EMPTY, data: new Uint8Array(32).fill(6) });
    const victim = await startAuthSession(tpm, srk, "hmac");
    const inner = tpm.transport;
    const tampering = new TpmClient({
      async send(command) {
        const r = await inner.send(command);
        // Flip a bit in the last byte of the first response parameter (outHMAC, encrypted).
        const out = r.slice();
        const paramSize = new DataView(out.buffer).getUint32(10);
        out[14 + paramSize - 1] = (out[14 + paramSize - 1] as number) ^ 1;
        return out;
      },
      close: async () => {},
    });
    try {
      const err = await hmac(
        tampering,
        obj,
        { kind: "session", session: victim, authValue: EMPTY },
        Uint8Array.of(3),
        victim,
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TpmResponseAuthError);
      expect((err as Error).message).toMatch(/TPM2_HMAC: the response HMAC of session 1 does not verify/);
    } finally {
      await flushContext(tpm, victim.handle);
      await flushContext(tpm, obj.handle);
    }
  });

  it("exhaustion: loading objects without flushing ends in TPM_RC_OBJECT_MEMORY (0x902), which is not retried", async () => {
    const transientMin = (await getProperties(tpm, TPM_PT.HR_TRANSIENT_MIN, 1)).properties.get(
      TPM_PT.HR_TRANSIENT_MIN,
    ) as number;
    const loaded: number[] = [];
    try {
      let error: TpmError | undefined;
      for (let i = 0; i < 10 && !error; i++) {
        const before = sends;
        try {
          const o = await createPrimary(tpm, {
            hierarchy: TPM_RH.NULL,
            auth: password(),
            template: { ...hmacKeyTemplateOrigin(), unique: Uint8Array.of(i) },
          });
          loaded.push(o.handle);
        } catch (err) {
          error = err as TpmError;
          expect(sends - before).toBe(1);
        }
      }
      expect(error).toBeInstanceOf(TpmError);
      expect(error?.rc).toBe(0x902);
      expect(error?.is("OBJECT_MEMORY")).toBe(true);
      expect(error?.retryable).toBe(false);
      expect(loaded.length + 1).toBeGreaterThanOrEqual(transientMin); // + the shared primary
    } finally {
      for (const h of loaded) await flushContext(tpm, h);
    }
  });

  it("the client's queue: 50 concurrent GetRandom calls over one connection, one command on the wire at a time", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let sent = 0;
    const inner = tpm.transport;
    const spy: Transport = {
      async send(command) {
        inFlight++;
        sent++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          return await inner.send(command);
        } finally {
          inFlight--;
        }
      },
      close: async () => {},
    };
    const queued = new TpmClient(spy);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => getRandom(queued, 8 + (i % 8))));
    expect(results.map((r) => r.length)).toEqual(Array.from({ length: 50 }, (_, i) => 8 + (i % 8)));
    expect(new Set(results.map(hex)).size).toBe(50);
    expect(sent).toBe(50);
    expect(maxInFlight).toBe(1);
  });

  it("exclusive(): no other command reaches the TPM until the section ends", async () => {
    const order: string[] = [];
    const section = tpm.exclusive(async (x) => {
      order.push("section start");
      await getRandom(x, 4);
      await new Promise((r) => setTimeout(r, 30));
      await getRandom(x, 4);
      order.push("section end");
    });
    const outside = getRandom(tpm, 4).then(() => order.push("outside"));
    await Promise.all([section, outside]);
    expect(order).toEqual(["section start", "section end", "outside"]);
  });
});

/** An HMAC key the TPM generates itself, for primaries that only need to occupy a slot. */
function hmacKeyTemplateOrigin() {
  const t = hmacKeyTemplate();
  return { ...t, objectAttributes: t.objectAttributes | 0x20 /* sensitiveDataOrigin */ };
}
