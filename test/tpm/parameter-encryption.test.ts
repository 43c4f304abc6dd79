/**
 * Parameter encryption on the wire (Part 1 §21): every byte sent to and
 * received from swtpm is captured through the client's `tap`, and the
 * secrets — HMAC key bytes going into Create, sealed data going into Create
 * and coming out of Unseal, the HMAC output coming out of TPM2_HMAC — must
 * not appear in it. The same commands sent deliberately without a decrypt /
 * encrypt session show those bytes in the clear, which proves the search
 * would find them.
 */
import { createHmac } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { TpmClient } from "../../src/tpm/client.js";
import { create } from "../../src/tpm/commands/create.js";
import { createPrimary } from "../../src/tpm/commands/create-primary.js";
import { flushContext } from "../../src/tpm/commands/flush-context.js";
import { hmac } from "../../src/tpm/commands/hmac.js";
import { load } from "../../src/tpm/commands/load.js";
import { startAuthSession } from "../../src/tpm/commands/start-auth-session.js";
import { unseal } from "../../src/tpm/commands/unseal.js";
import { LIMITS, TPM_ALG, TPM_CC, TPM_RH } from "../../src/tpm/constants.js";
import { TpmWriter, unmarshal } from "../../src/tpm/marshal.js";
import { type LoadedObject, objectArg } from "../../src/tpm/object.js";
import type { AuthSession } from "../../src/tpm/session.js";
import {
  marshalSensitiveCreate,
  readPublic2b,
  type TpmtPublic,
  writePcrSelections,
  writePublic2b,
} from "../../src/tpm/structures.js";
import { type Swtpm, skipSwtpm, startSwtpm } from "../helpers/swtpm.js";
import {
  connect,
  contains,
  EMPTY,
  eccStorageTemplate,
  flushAll,
  hex,
  hmacKeyTemplate,
  password,
  sealTemplate,
} from "./support.js";

/** Distinctive patterns that cannot occur by chance in a nonce or a ciphertext. */
const KEY = new Uint8Array(32).map((_, i) => 0xc0 + (i % 16));
const SEALED = new Uint8Array(32).map((_, i) => 0x30 + (i % 10));
const AUTH = new TextEncoder().encode("object-auth");
const MESSAGE = new TextEncoder().encode("a message to MAC, also not on the wire");

describe.skipIf(skipSwtpm)("parameter encryption: no secret crosses the bus in the clear", () => {
  let sw: Swtpm;
  let tpm: TpmClient;
  let srk: LoadedObject;
  let s: AuthSession;
  const wire: Uint8Array[] = [];
  /** Captures each command and response from the moment it is switched on. */
  let capturing = false;

  beforeAll(async () => {
    sw = await startSwtpm();
    tpm = connect(sw.port, {
      tap: (command, response) => {
        if (capturing) wire.push(command.slice(), response.slice());
      },
    });
    srk = await createPrimary(tpm, {
      hierarchy: TPM_RH.NULL,
      auth: password(),
      template: eccStorageTemplate(),
    });
    s = await startAuthSession(tpm, srk, "hmac");
  });
  beforeEach(() => {
    wire.length = 0;
    capturing = true;
  });
  afterEach(() => {
    capturing = false;
  });
  afterAll(async () => {
    if (tpm) await flushAll(tpm).catch(() => {});
    await tpm?.close();
    await sw?.destroy();
  });

  const viaS = (authValue: Uint8Array = EMPTY) => ({ kind: "session" as const, session: s, authValue });

  async function createAndLoad(template: TpmtPublic, data: Uint8Array): Promise<LoadedObject> {
    const c = await create(tpm, {
      parent: srk,
      auth: viaS(),
      template,
      sensitive: { userAuth: AUTH, data },
      encryptWith: s,
    });
    return load(tpm, { parent: srk, auth: viaS(), private: c.private, publicBytes: c.publicBytes });
  }

  /** TPM2_Create as create() builds it, but authorized by a password and with no session to encrypt inSensitive. */
  async function createInTheClear(template: TpmtPublic, data: Uint8Array) {
    const w = new TpmWriter().bytes(marshalSensitiveCreate({ userAuth: AUTH, data }));
    writePublic2b(w, template);
    w.tpm2b(EMPTY, LIMITS.data, "outsideInfo");
    writePcrSelections(w, []);
    const res = await tpm.exec({
      code: TPM_CC.Create,
      handles: [objectArg(srk)],
      auths: [password()],
      params: w.finish(),
      responseHandles: 0,
    });
    return unmarshal(res.params, "Create", (r) => {
      const priv = r.tpm2b(LIMITS.private, "outPrivate");
      const { bytes } = readPublic2b(r);
      r.bytes(r.remaining, "rest");
      return { private: priv, publicBytes: bytes };
    });
  }

  it("Create + HMAC: neither the key bytes, the message, the authValue nor the HMAC output appear on the wire", async () => {
    const expected = createHmac("sha256", KEY).update(MESSAGE).digest();
    const obj = await createAndLoad(hmacKeyTemplate(), KEY);
    try {
      const out = await hmac(tpm, obj, viaS(AUTH), MESSAGE, s);
      expect(hex(out)).toBe(expected.toString("hex"));
    } finally {
      await flushContext(tpm, obj.handle);
    }
    expect(wire.length).toBeGreaterThanOrEqual(6); // Create, Load, HMAC, FlushContext: commands and responses
    expect(contains(wire, KEY)).toBe(false);
    expect(contains(wire, MESSAGE)).toBe(false);
    expect(contains(wire, AUTH)).toBe(false);
    expect(contains(wire, expected)).toBe(false);
    // No 8-byte run of the key either: the cipher hides every part of it.
    for (let i = 0; i + 8 <= KEY.length; i++) expect(contains(wire, KEY.subarray(i, i + 8))).toBe(false);
  });

  it("Create + Unseal: the sealed data appears neither going in nor coming out", async () => {
    const obj = await createAndLoad(sealTemplate(EMPTY, true), SEALED);
    try {
      const got = await unseal(tpm, obj, viaS(AUTH), s);
      expect(hex(got)).toBe(hex(SEALED));
    } finally {
      await flushContext(tpm, obj.handle);
    }
    expect(contains(wire, SEALED)).toBe(false);
    expect(contains(wire, AUTH)).toBe(false);
  });

  it("control: the same commands without encryption put every one of those secrets on the wire", async () => {
    const expected = createHmac("sha256", KEY).update(MESSAGE).digest();
    const key = await createInTheClear(hmacKeyTemplate(), KEY);
    expect(contains(wire, KEY)).toBe(true);
    expect(contains(wire, AUTH)).toBe(true);
    const sealed = await createInTheClear(sealTemplate(EMPTY, true), SEALED);
    const handles: number[] = [];
    try {
      const k = await load(tpm, {
        parent: srk,
        auth: password(),
        private: key.private,
        publicBytes: key.publicBytes,
      });
      handles.push(k.handle);
      wire.length = 0;
      const mac = await tpm.exec({
        code: TPM_CC.HMAC,
        handles: [objectArg(k)],
        auths: [password(AUTH)],
        params: new TpmWriter().tpm2b(MESSAGE, LIMITS.maxBuffer, "buffer").u16(TPM_ALG.SHA256).finish(),
        responseHandles: 0,
      });
      expect(contains([mac.params], expected)).toBe(true);
      expect(contains(wire, MESSAGE)).toBe(true);
      expect(contains(wire, expected)).toBe(true);

      const o = await load(tpm, {
        parent: srk,
        auth: password(),
        private: sealed.private,
        publicBytes: sealed.publicBytes,
      });
      handles.push(o.handle);
      wire.length = 0;
      await tpm.exec({
        code: TPM_CC.Unseal,
        handles: [objectArg(o)],
        auths: [password(AUTH)],
        params: EMPTY,
        responseHandles: 0,
      });
      expect(contains(wire, SEALED)).toBe(true);
    } finally {
      for (const h of handles) await flushContext(tpm, h);
    }
  });

  it("control: an HMAC session that authorizes but does not encrypt leaves the HMAC output readable", async () => {
    const expected = createHmac("sha256", KEY).update(MESSAGE).digest();
    const obj = await createAndLoad(hmacKeyTemplate(), KEY);
    try {
      wire.length = 0;
      await tpm.exec({
        code: TPM_CC.HMAC,
        handles: [objectArg(obj)],
        auths: [viaS(AUTH)],
        params: new TpmWriter().tpm2b(MESSAGE, LIMITS.maxBuffer, "buffer").u16(TPM_ALG.SHA256).finish(),
        responseHandles: 0,
      });
      expect(contains(wire, expected)).toBe(true);
      expect(contains(wire, MESSAGE)).toBe(true);
    } finally {
      await flushContext(tpm, obj.handle);
    }
  });
});
