import { gcm } from "@noble/ciphers/aes.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { b64u, concatBytes, hex, u8, u32be, utf8 } from "../../src/crypto/bytes.js";
import { canonicalContext, type EncryptionContext } from "../../src/crypto/context.js";
import {
  blobFromText,
  blobToText,
  DecryptError,
  KEY_NAME_RE,
  MAX_BLOB_TEXT_LENGTH,
  MAX_PLAINTEXT_BYTES,
  parseHeader,
  ROOT_KEY_NAME,
  unwrap,
  wrap,
} from "../../src/crypto/envelope.js";
import { type KeyHandle, SoftwareKeyHandle } from "../../src/crypto/key-handle.js";
import { Secret } from "../../src/crypto/secret.js";

const handleOf = (key: Uint8Array): SoftwareKeyHandle =>
  new SoftwareKeyHandle(Secret.of(Uint8Array.from(key)));
const newHandle = (): SoftwareKeyHandle => new SoftwareKeyHandle(Secret.random(32));

async function expectDecryptError(
  p: Promise<unknown>,
  reason?: DecryptError["reason"],
): Promise<DecryptError> {
  const err = await p.then(
    () => {
      throw new Error("unwrap succeeded but should have failed");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DecryptError);
  const de = err as DecryptError;
  expect(de.message).toBe("decryption failed");
  if (reason !== undefined) expect(de.reason).toBe(reason);
  return de;
}

/** FORMATS §3 written out independently with @noble/hashes and @noble/ciphers. */
function referenceBlob(
  key: Uint8Array,
  name: string,
  version: number,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  ctx: EncryptionContext,
): Uint8Array {
  const nameBytes = utf8(name);
  const aadHash = sha256(
    concatBytes(
      utf8("custos/aad/v1"),
      canonicalContext(ctx),
      u8(nameBytes.length),
      nameBytes,
      u32be(version),
    ),
  );
  const wk = hmac(sha256, key, concatBytes(utf8("custos/wrap/v1"), nonce, aadHash));
  const header = concatBytes(u8(1), u8(nameBytes.length), nameBytes, u32be(version), nonce);
  return concatBytes(header, gcm(wk, new Uint8Array(12), concatBytes(header, aadHash)).encrypt(plaintext));
}

const contextArb = fc.dictionary(
  // "__proto__" is refused by design (context.ts); fast-check generates it on purpose.
  fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/).filter((k) => k !== "__proto__"),
  fc.string({ maxLength: 40 }),
  {
    maxKeys: 6,
  },
);
const nameArb = fc.oneof(fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,127}$/), fc.constant(ROOT_KEY_NAME));

describe("derive-then-wrap round trip", () => {
  it("unwrap(wrap(x)) = x for random plaintexts ≤ 4096 bytes, contexts, names, versions and keys", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        nameArb,
        fc.integer({ min: 1, max: 0xffff_ffff }),
        fc.uint8Array({ maxLength: MAX_PLAINTEXT_BYTES }),
        contextArb,
        async (key, name, version, plaintext, ctx) => {
          const blob = await wrap(handleOf(key), name, version, plaintext, ctx);
          expect(blob.length).toBe(38 + name.length + plaintext.length + 16);
          const header = parseHeader(blob);
          expect(header).toMatchObject({
            format: 1,
            keyName: name,
            keyVersion: version,
            headerLength: 38 + name.length,
          });
          expect(await unwrap(handleOf(key), blob, { ...ctx })).toEqual(plaintext);
          expect(blobFromText(blobToText(blob))).toEqual(blob);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("lays out the blob exactly as FORMATS §3 (checked against an independent implementation)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        nameArb,
        fc.integer({ min: 1, max: 0xffff_ffff }),
        fc.uint8Array({ maxLength: 600 }),
        contextArb,
        async (key, name, version, plaintext, ctx) => {
          const blob = await wrap(handleOf(key), name, version, plaintext, ctx);
          const { nonce } = parseHeader(blob);
          expect(hex.encode(blob)).toBe(hex.encode(referenceBlob(key, name, version, nonce, plaintext, ctx)));
        },
      ),
      { numRuns: 100 },
    );
  });

  it("derives the wrapping key from prf('custos/wrap/v1' ‖ nonce ‖ aadHash), once per wrap", async () => {
    const inner = newHandle();
    const inputs: Uint8Array[] = [];
    const spy: KeyHandle = {
      prf: (x) => {
        inputs.push(Uint8Array.from(x));
        return inner.prf(x);
      },
    };
    const blob = await wrap(spy, "k", 7, utf8("dek"), { a: "b" });
    expect(inputs).toHaveLength(1);
    const { nonce } = parseHeader(blob);
    expect(hex.encode(inputs[0]!.subarray(0, 14))).toBe(hex.encode(utf8("custos/wrap/v1")));
    expect(inputs[0]!.subarray(14, 46)).toEqual(nonce);
    expect(inputs[0]!.length).toBe(14 + 32 + 32);
  });

  it("uses a fresh nonce every time, so equal inputs give different blobs", async () => {
    const h = newHandle();
    const a = await wrap(h, "k", 1, utf8("same"), {});
    const b = await wrap(h, "k", 1, utf8("same"), {});
    expect(hex.encode(a)).not.toBe(hex.encode(b));
  });

  it("handles the empty plaintext and the 4096-byte maximum", async () => {
    const h = newHandle();
    for (const n of [0, MAX_PLAINTEXT_BYTES]) {
      const pt = new Uint8Array(n).fill(0x61);
      expect(await unwrap(h, await wrap(h, "k", 1, pt, {}), {})).toEqual(pt);
    }
  });

  it("accepts the reserved name _root (sealed records) and 128-character names", async () => {
    const h = newHandle();
    const root = await wrap(h, ROOT_KEY_NAME, 3, utf8("material"), { "custos.record": "audit-key" });
    expect(parseHeader(root)).toMatchObject({ keyName: "_root", keyVersion: 3 });
    expect(await unwrap(h, root, { "custos.record": "audit-key" })).toEqual(utf8("material"));
    const long = "a".repeat(128);
    expect(parseHeader(await wrap(h, long, 1, new Uint8Array(0), {})).keyName).toBe(long);
  });
});

describe("unwrap refuses anything altered or mismatched, with one opaque error", () => {
  it("fails for every single bit flipped anywhere in a blob (exhaustive)", async () => {
    const h = newHandle();
    const ctx = { patient: "MRN-1" };
    const blob = await wrap(h, "k", 1, utf8("sixteen byte dek"), ctx);
    expect(blob.length).toBe(38 + 1 + 16 + 16);
    const reasons = new Set<string>();
    for (let bit = 0; bit < blob.length * 8; bit++) {
      const bad = Uint8Array.from(blob);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      const err = await expectDecryptError(unwrap(h, bad, ctx));
      reasons.add(err.reason);
      if (bit < 8) expect(err.reason).toBe("unsupported_version");
    }
    expect(reasons).toEqual(new Set(["unsupported_version", "malformed", "authentication_failed"]));
    expect(await unwrap(h, blob, ctx)).toEqual(utf8("sixteen byte dek"));
  });

  it("fails for every truncation and for an appended byte", async () => {
    const h = newHandle();
    const blob = await wrap(h, "k", 1, utf8("payload"), {});
    for (let n = 0; n < blob.length; n++) await expectDecryptError(unwrap(h, blob.subarray(0, n), {}));
    await expectDecryptError(unwrap(h, concatBytes(blob, u8(0)), {}), "authentication_failed");
  });

  it("fails with a wrong context: changed value, extra entry, missing entry", async () => {
    const h = newHandle();
    const ctx = { patient: "MRN-1", institution: "nyu" };
    const blob = await wrap(h, "k", 1, utf8("x"), ctx);
    const others: EncryptionContext[] = [
      { patient: "MRN-2", institution: "nyu" },
      { ...ctx, purpose: "TREAT" },
      { patient: "MRN-1" },
      {},
    ];
    for (const other of others) {
      await expectDecryptError(unwrap(h, blob, other), "authentication_failed");
    }
  });

  it("fails when the same value sits under another key name in the context", async () => {
    const h = newHandle();
    const blob = await wrap(h, "k", 1, utf8("x"), { patient: "MRN-1" });
    await expectDecryptError(unwrap(h, blob, { patientId: "MRN-1" }), "authentication_failed");
    await expectDecryptError(unwrap(h, blob, { Patient: "MRN-1" }), "authentication_failed");
  });

  it("fails with the wrong key", async () => {
    const blob = await wrap(newHandle(), "k", 1, utf8("x"), {});
    await expectDecryptError(unwrap(newHandle(), blob, {}), "authentication_failed");
  });

  it("fails when the header is relabelled with another version or another key name", async () => {
    const h = newHandle();
    const blob = await wrap(h, "ka", 2, utf8("x"), {});
    const otherVersion = Uint8Array.from(blob);
    otherVersion.set(u32be(3), 2 + 2);
    expect(parseHeader(otherVersion).keyVersion).toBe(3);
    await expectDecryptError(unwrap(h, otherVersion, {}), "authentication_failed");
    const otherName = Uint8Array.from(blob);
    otherName.set(utf8("kb"), 2);
    expect(parseHeader(otherName).keyName).toBe("kb");
    await expectDecryptError(unwrap(h, otherName, {}), "authentication_failed");
  });

  it("fails when a blob made under version v is opened with the key of version v+1", async () => {
    const v1 = newHandle();
    const v2 = newHandle();
    const blob = await wrap(v1, "k", 1, utf8("x"), {});
    await expectDecryptError(unwrap(v2, blob, {}), "authentication_failed");
  });

  it("keeps the reason out of the message", async () => {
    const err = new DecryptError("authentication_failed");
    expect(err.message).toBe("decryption failed");
    expect(String(err)).not.toContain("authentication");
    expect(err.reason).toBe("authentication_failed");
  });

  it("lets an error of the key handle itself through unchanged (an internal fault, not a bad blob)", async () => {
    const h = newHandle();
    const blob = await wrap(h, "k", 1, utf8("x"), {});
    const broken: KeyHandle = { prf: () => Promise.reject(new Error("TPM_RC_LOCKOUT")) };
    await expect(unwrap(broken, blob, {})).rejects.toThrow("TPM_RC_LOCKOUT");
    const short: KeyHandle = { prf: async () => new Uint8Array(16) };
    await expect(wrap(short, "k", 1, utf8("x"), {})).rejects.toThrow(/32 bytes/);
  });
});

describe("parseHeader", () => {
  const valid = async () => wrap(newHandle(), "key", 5, utf8("x"), {});

  it("returns format, key name, key version, nonce and header length", async () => {
    const blob = await valid();
    const header = parseHeader(blob);
    expect(header).toMatchObject({ format: 1, keyName: "key", keyVersion: 5, headerLength: 41 });
    expect(header.nonce).toEqual(blob.subarray(9, 41));
  });

  it.each([
    ["the empty blob", () => new Uint8Array(0), "malformed"],
    ["format 0", () => Uint8Array.of(0, 1, 0x6b), "unsupported_version"],
    ["format 2", () => concatBytes(u8(2), new Uint8Array(60)), "unsupported_version"],
    ["only a format byte", () => u8(1), "malformed"],
  ] as const)("refuses %s", (_, make, reason) => {
    expect(() => parseHeader(make())).toThrow(DecryptError);
    try {
      parseHeader(make());
    } catch (err) {
      expect((err as DecryptError).reason).toBe(reason);
    }
  });

  it("refuses name length 0 and 129, version 0, a non-printable name, and bodies too short or too long", async () => {
    const blob = await valid();
    const cases: Uint8Array[] = [];
    const withByte = (i: number, b: number) => {
      const c = Uint8Array.from(blob);
      c[i] = b;
      return c;
    };
    cases.push(withByte(1, 0), withByte(1, 129), withByte(2, 0x20), withByte(2, 0x7f), withByte(2, 0xc3));
    const v0 = Uint8Array.from(blob);
    v0.set(u32be(0), 5);
    cases.push(v0);
    cases.push(blob.subarray(0, 41 + 15));
    cases.push(concatBytes(blob.subarray(0, 41), new Uint8Array(MAX_PLAINTEXT_BYTES + 17)));
    for (const c of cases) expect(() => parseHeader(c), hex.encode(c.subarray(0, 8))).toThrow(DecryptError);
  });

  it("refuses a non-Uint8Array with a TypeError (a programming error, not a bad blob)", () => {
    expect(() => parseHeader("custos:v1:AA" as unknown as Uint8Array)).toThrow(TypeError);
  });
});

describe("wrap input checks (programming errors: TypeError/RangeError, never DecryptError)", () => {
  const h = newHandle();

  it.each([
    ["an uppercase name", "Key"],
    ["a name starting with '.'", ".k"],
    ["a 129-character name", "a".repeat(129)],
    ["the empty name", ""],
    ["a bare '_'", "_"],
    ["a name with a slash", "a/b"],
  ])("refuses %s", async (_, name) => {
    await expect(wrap(h, name, 1, utf8("x"), {})).rejects.toThrow(RangeError);
  });

  it("exports the user key-name rule of FORMATS", () => {
    expect(KEY_NAME_RE.test("ehr.nyu-notes_2")).toBe(true);
    expect(KEY_NAME_RE.test("_root")).toBe(false);
  });

  it("refuses version 0, versions beyond u32, oversized plaintext and bad contexts", async () => {
    await expect(wrap(h, "k", 0, utf8("x"), {})).rejects.toThrow(RangeError);
    await expect(wrap(h, "k", 2 ** 32, utf8("x"), {})).rejects.toThrow(RangeError);
    await expect(wrap(h, "k", 1, new Uint8Array(MAX_PLAINTEXT_BYTES + 1), {})).rejects.toThrow(/4096/);
    await expect(wrap(h, "k", 1, utf8("x"), { "bad key": "v" })).rejects.toThrow(RangeError);
    await expect(wrap(h, "k", 1, "x" as unknown as Uint8Array, {})).rejects.toThrow(TypeError);
    await expect(wrap({} as KeyHandle, "k", 1, utf8("x"), {})).rejects.toThrow(TypeError);
  });

  it("unwrap checks the caller's context before looking at the blob", async () => {
    const blob = await wrap(h, "k", 1, utf8("x"), {});
    await expect(unwrap(h, blob, { "bad key": "v" })).rejects.toThrow(RangeError);
  });
});

describe("text form custos:v1:<b64u>", () => {
  it("round-trips and starts with custos:v1:", async () => {
    const blob = await wrap(newHandle(), "k", 1, utf8("x"), {});
    const text = blobToText(blob);
    expect(text).toMatch(/^custos:v1:[A-Za-z0-9_-]+$/);
    expect(text.slice("custos:v1:".length)).toBe(b64u.encode(blob));
    expect(blobFromText(text)).toEqual(blob);
  });

  it("stays under the text length cap for the largest blob", async () => {
    const blob = await wrap(newHandle(), "a".repeat(128), 1, new Uint8Array(MAX_PLAINTEXT_BYTES), {});
    expect(blobToText(blob).length).toBeLessThan(MAX_BLOB_TEXT_LENGTH);
  });

  it("refuses to render a blob of another format", () => {
    expect(() => blobToText(concatBytes(u8(2), new Uint8Array(60)))).toThrow(RangeError);
  });

  const good = (async () => blobToText(await wrap(newHandle(), "k", 1, utf8("x"), {})))();

  it.each([
    ["no prefix", (t: string) => t.slice("custos:v1:".length), "malformed"],
    ["another scheme", (t: string) => t.replace("custos:", "kustos:"), "malformed"],
    ["an uppercase prefix", (t: string) => t.replace("custos:", "CUSTOS:"), "malformed"],
    ["a missing version", (t: string) => t.replace("custos:v1:", "custos:"), "malformed"],
    ["a zero-padded version", (t: string) => t.replace("custos:v1:", "custos:v01:"), "malformed"],
    ["an unknown version", (t: string) => t.replace("custos:v1:", "custos:v2:"), "unsupported_version"],
    ["padding", (t: string) => `${t}=`, "malformed"],
    ["two padding characters", (t: string) => `${t}==`, "malformed"],
    ["a trailing newline", (t: string) => `${t}\n`, "malformed"],
    ["inner whitespace", (t: string) => `${t.slice(0, 20)} ${t.slice(20)}`, "malformed"],
    ["the standard base64 alphabet", (t: string) => `${t.slice(0, 20)}+/${t.slice(22)}`, "malformed"],
    ["an empty payload", () => "custos:v1:", "malformed"],
    [
      "a payload of impossible length (4n+1 characters)",
      (t: string) => t.padEnd(t.length + ((5 - ((t.length - 10) % 4)) % 4), "A"),
      "malformed",
    ],
    ["text beyond the length cap", () => `custos:v1:${"A".repeat(MAX_BLOB_TEXT_LENGTH)}`, "malformed"],
  ] as const)("refuses %s", async (_, mutate, reason) => {
    const text = mutate(await good);
    expect(() => blobFromText(text)).toThrow(DecryptError);
    try {
      blobFromText(text);
    } catch (err) {
      expect((err as DecryptError).reason).toBe(reason);
      expect((err as DecryptError).message).toBe("decryption failed");
    }
  });

  it("refuses a v1 prefix on a blob whose byte 0 is not 1", () => {
    const text = `custos:v1:${b64u.encode(concatBytes(u8(2), new Uint8Array(60)))}`;
    expect(() => blobFromText(text)).toThrow(DecryptError);
  });
});
