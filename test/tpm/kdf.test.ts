/**
 * KDFa and KDFe (Part 1 §11.4.10.2–3) and the parameter cipher (§21.3),
 * checked three ways: published known answers (vectors/kdf.json, sources
 * noted there), an independent implementation of the spec's definitions
 * written here over @noble/hashes and @noble/ciphers, and the TPM itself —
 * a salted session only works if KDFe (salt) and KDFa (session key, CFB key)
 * agree with swtpm's.
 */
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { cfb as nobleCfb } from "@noble/ciphers/aes.js";
import { hmac as nobleHmac } from "@noble/hashes/hmac.js";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { concatBytes, u32be } from "../../src/crypto/bytes.js";
import type { TpmClient } from "../../src/tpm/client.js";
import { create } from "../../src/tpm/commands/create.js";
import { createPrimary } from "../../src/tpm/commands/create-primary.js";
import { flushContext } from "../../src/tpm/commands/flush-context.js";
import { hmac } from "../../src/tpm/commands/hmac.js";
import { load } from "../../src/tpm/commands/load.js";
import { startAuthSession } from "../../src/tpm/commands/start-auth-session.js";
import { TPM_RH } from "../../src/tpm/constants.js";
import { cfb, kdfa, kdfe } from "../../src/tpm/kdf.js";
import { type Swtpm, skipSwtpm, startSwtpm } from "../helpers/swtpm.js";
import {
  connect,
  EMPTY,
  eccStorageTemplate,
  flushAll,
  fromHex,
  hex,
  hmacKeyTemplate,
  password,
} from "./support.js";

interface Vectors {
  kdfa: {
    vectors: {
      name: string;
      key: string;
      label: string;
      contextU: string;
      contextV: string;
      bits: number;
      result: string;
    }[];
  };
  kdfe: {
    vectors: {
      name: string;
      z: string;
      label: string;
      partyU: string;
      partyV: string;
      bits: number;
      result: string;
    }[];
  };
}
const VECTORS = JSON.parse(readFileSync(new URL("./vectors/kdf.json", import.meta.url), "utf8")) as Vectors;

const utf8z = (s: string) => concatBytes(new TextEncoder().encode(s), Uint8Array.of(0));

/** KDFa as Part 1 §11.4.10.2 defines it: HMAC(key, [i]32 ‖ Label ‖ 00 ‖ ContextU ‖ ContextV ‖ [L]32), i = 1.. */
function refKdfa(key: Uint8Array, label: string, u: Uint8Array, v: Uint8Array, bits: number): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (let i = 1; blocks.length * 32 < bits / 8; i++) {
    blocks.push(nobleHmac(nobleSha256, key, concatBytes(u32be(i), utf8z(label), u, v, u32be(bits))));
  }
  return concatBytes(...blocks).slice(0, bits / 8);
}

/** KDFe as Part 1 §11.4.10.3 defines it: H([i]32 ‖ Z ‖ Use ‖ 00 ‖ PartyUInfo ‖ PartyVInfo), i = 1.. */
function refKdfe(z: Uint8Array, label: string, u: Uint8Array, v: Uint8Array, bits: number): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (let i = 1; blocks.length * 32 < bits / 8; i++) {
    blocks.push(nobleSha256(concatBytes(u32be(i), z, utf8z(label), u, v)));
  }
  return concatBytes(...blocks).slice(0, bits / 8);
}

const bytes = (max: number) => fc.uint8Array({ maxLength: max });
const label = fc.constantFrom("ATH", "CFB", "SECRET", "STORAGE", "INTEGRITY", "OBFUSCATE", "x");
const bits = fc.integer({ min: 1, max: 128 }).map((n) => n * 8);

describe("KDFa (Part 1 §11.4.10.2)", () => {
  it.each(VECTORS.kdfa.vectors)("matches the known answer: $name", (v) => {
    expect(hex(kdfa(fromHex(v.key), v.label, fromHex(v.contextU), fromHex(v.contextV), v.bits))).toBe(
      v.result,
    );
  });

  it("equals the spec's definition computed independently with @noble/hashes (property)", () => {
    fc.assert(
      fc.property(bytes(64), label, bytes(40), bytes(40), bits, (key, l, u, v, n) => {
        expect(hex(kdfa(key, l, u, v, n))).toBe(hex(refKdfa(key, l, u, v, n)));
      }),
      { numRuns: 60 },
    );
  });

  it("terminates the label with a NUL and puts the bit length in every block", () => {
    const key = new Uint8Array(32).fill(1);
    const noNul = nobleHmac(
      nobleSha256,
      key,
      concatBytes(u32be(1), new TextEncoder().encode("ATH"), u32be(256)),
    );
    expect(hex(kdfa(key, "ATH", EMPTY, EMPTY, 256))).not.toBe(hex(noNul));
    // Asking for fewer bits changes every byte, not just the length.
    expect(hex(kdfa(key, "ATH", EMPTY, EMPTY, 128))).not.toBe(
      hex(kdfa(key, "ATH", EMPTY, EMPTY, 256).subarray(0, 16)),
    );
  });

  it("refuses a bit count that is not a positive multiple of 8", () => {
    for (const n of [0, -8, 7, 12.5]) expect(() => kdfa(EMPTY, "ATH", EMPTY, EMPTY, n)).toThrow(RangeError);
  });
});

describe("KDFe (Part 1 §11.4.10.3)", () => {
  it.each(VECTORS.kdfe.vectors)("matches the known answer: $name", (v) => {
    expect(hex(kdfe(fromHex(v.z), v.label, fromHex(v.partyU), fromHex(v.partyV), v.bits))).toBe(v.result);
  });

  it("equals the spec's definition computed independently with @noble/hashes (property)", () => {
    fc.assert(
      fc.property(bytes(66), label, bytes(66), bytes(66), bits, (z, l, u, v, n) => {
        expect(hex(kdfe(z, l, u, v, n))).toBe(hex(refKdfe(z, l, u, v, n)));
      }),
      { numRuns: 60 },
    );
  });

  it("refuses a bit count that is not a positive multiple of 8", () => {
    for (const n of [0, -8, 9]) expect(() => kdfe(EMPTY, "SECRET", EMPTY, EMPTY, n)).toThrow(RangeError);
  });
});

describe('parameter cipher (Part 1 §21.3): AES-128-CFB keyed by KDFa(sessionValue, "CFB", nonceNewer, nonceOlder)', () => {
  it("equals AES-128-CFB from @noble/ciphers with key ‖ iv from the reference KDFa, and inverts itself (property)", () => {
    fc.assert(
      fc.property(
        bytes(64),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        bytes(200),
        (sv, newer, older, data) => {
          const keyIv = refKdfa(sv, "CFB", newer, older, 256);
          const expected = nobleCfb(keyIv.subarray(0, 16), keyIv.subarray(16)).encrypt(data);
          const buf = data.slice();
          cfb("encrypt", sv, newer, older, buf);
          expect(hex(buf)).toBe(hex(expected));
          cfb("decrypt", sv, newer, older, buf);
          expect(hex(buf)).toBe(hex(data));
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe.skipIf(skipSwtpm)("KDFe and KDFa against swtpm: a salted session works end to end", () => {
  let sw: Swtpm;
  let tpm: TpmClient;

  beforeAll(async () => {
    sw = await startSwtpm();
    tpm = connect(sw.port);
  });
  afterEach(async () => {
    expect(await flushAll(tpm)).toEqual([]);
  });
  afterAll(async () => {
    await tpm?.close();
    await sw?.destroy();
  });

  it("the TPM accepts our session HMACs and our CFB, and its encrypted HMAC output decrypts to node:crypto's", async () => {
    const primary = await createPrimary(tpm, {
      hierarchy: TPM_RH.NULL,
      auth: password(),
      template: eccStorageTemplate(),
    });
    const s = await startAuthSession(tpm, primary, "hmac"); // salt = KDFe(Z, "SECRET"), key = KDFa(salt, "ATH")
    let obj: Awaited<ReturnType<typeof load>> | undefined;
    try {
      const key = new Uint8Array(32).map((_, i) => i * 7 + 1);
      const auth = Uint8Array.of(1, 2, 3);
      const sessionAuth = { kind: "session" as const, session: s, authValue: EMPTY };
      // Create's inSensitive goes in encrypted under KDFa(sessionKey, "CFB", …): a wrong KDF would seal garbage.
      const created = await create(tpm, {
        parent: primary,
        auth: sessionAuth,
        template: hmacKeyTemplate(),
        sensitive: { userAuth: auth, data: key },
        encryptWith: s,
      });
      obj = await load(tpm, {
        parent: primary,
        auth: sessionAuth,
        private: created.private,
        publicBytes: created.publicBytes,
      });
      const data = new TextEncoder().encode("salted session, end to end");
      const out = await hmac(tpm, obj, { kind: "session", session: s, authValue: auth }, data, s);
      expect(hex(out)).toBe(createHmac("sha256", key).update(data).digest("hex"));
    } finally {
      if (obj) await flushContext(tpm, obj.handle);
      await flushContext(tpm, s.handle);
      await flushContext(tpm, primary.handle);
    }
  });
});
