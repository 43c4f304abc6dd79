import { sha256 } from "@noble/hashes/sha2.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concatBytes } from "../../src/crypto/bytes.js";
import { TPM_ALG, TPM_ECC } from "../../src/tpm/constants.js";
import { marshal, TpmFormatError, type TpmReader, TpmWriter, unmarshal } from "../../src/tpm/marshal.js";
import {
  AES128_CFB,
  type EccPublic,
  handleName,
  type KeyedHashPublic,
  marshalPublic,
  marshalSensitiveCreate,
  objectName,
  type PcrSelection,
  readDigests,
  readDigestValues,
  readEccPoint,
  readPcrSelections,
  readPublic,
  readPublic2b,
  readSensitive,
  readSensitiveCreate,
  readSymDef,
  readTicket,
  type SymDef,
  type TpmtPublic,
  writeDigests,
  writeDigestValues,
  writeEccPoint,
  writePcrSelections,
  writePublic2b,
  writeSensitive,
  writeSymDef,
} from "../../src/tpm/structures.js";
import { eccStorageTemplate, fromHex, hex, sealTemplate } from "./support.js";

// ---- arbitraries: every variant the codecs claim to support, at every size up to the limits ----

const bytesUpTo = (max: number) => fc.uint8Array({ maxLength: max });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });

const symDefArb: fc.Arbitrary<SymDef | null> = fc.option(
  fc.constantFrom<128 | 256>(128, 256).map((keyBits) => ({ ...AES128_CFB, keyBits })),
  { nil: null },
);

const keyedHashArb: fc.Arbitrary<KeyedHashPublic> = fc.record({
  type: fc.constant("keyedhash" as const),
  nameAlg: fc.constant(TPM_ALG.SHA256),
  objectAttributes: u32,
  authPolicy: bytesUpTo(64),
  scheme: fc.constantFrom<"hmac-sha256" | "null">("hmac-sha256", "null"),
  unique: bytesUpTo(64),
});

const eccArb: fc.Arbitrary<EccPublic> = fc.record({
  type: fc.constant("ecc" as const),
  nameAlg: fc.constant(TPM_ALG.SHA256),
  objectAttributes: u32,
  authPolicy: bytesUpTo(64),
  symmetric: symDefArb,
  scheme: fc.constant("null" as const),
  curveId: fc.constant(TPM_ECC.NIST_P256),
  kdf: fc.constant("null" as const),
  unique: fc.record({ x: bytesUpTo(66), y: bytesUpTo(66) }),
});

const publicArb: fc.Arbitrary<TpmtPublic> = fc.oneof(keyedHashArb, eccArb);

const pcrSelectionArb: fc.Arbitrary<PcrSelection> = fc.record({
  hash: fc.constantFrom<PcrSelection["hash"]>(TPM_ALG.SHA256, TPM_ALG.SHA1),
  pcrs: fc
    .uniqueArray(fc.integer({ min: 0, max: 23 }), { maxLength: 24 })
    .map((p) => p.sort((a, b) => a - b)),
});

/**
 * Every structure's codec must (1) read back what it wrote, (2) refuse every
 * strict prefix of a valid encoding and (3) refuse a trailing byte — all with
 * TpmFormatError. `check` asserts the three for one value.
 */
function checkCodec<T>(value: T, write: (w: TpmWriter, v: T) => void, read: (r: TpmReader) => T): Uint8Array {
  const bytes = marshal((w) => write(w, value));
  expect(unmarshal(bytes, "s", read)).toEqual(value);
  for (let n = 0; n < bytes.length; n++) {
    expect(() => unmarshal(bytes.subarray(0, n), "s", read)).toThrow(TpmFormatError);
  }
  expect(() => unmarshal(concatBytes(bytes, Uint8Array.of(0)), "s", read)).toThrow(
    /unexpected trailing bytes/,
  );
  return bytes;
}

function patchU16(bytes: Uint8Array, offset: number, v: number): Uint8Array {
  const out = bytes.slice();
  out[offset] = v >>> 8;
  out[offset + 1] = v & 0xff;
  return out;
}

const parse = (bytes: Uint8Array) => unmarshal(bytes, "TPMT_PUBLIC", (r) => readPublic(r));

describe("TPMT_PUBLIC (Part 2 §12.2.4)", () => {
  it("round-trips keyed-hash and ECC public areas, refusing every prefix and a trailing byte (property)", () => {
    fc.assert(
      fc.property(publicArb, (p) => {
        const bytes = checkCodec(p, (w, v) => w.bytes(marshalPublic(v)), readPublic);
        expect(marshalPublic(parse(bytes))).toEqual(bytes);
      }),
      { numRuns: 60 },
    );
  });

  it("encodes the ECC storage template as the spec lays it out", () => {
    // type ECC, nameAlg SHA256, attributes 0x00030472, empty authPolicy,
    // AES-128-CFB, scheme NULL, curve NIST_P256, kdf NULL, empty x and y.
    expect(hex(marshalPublic(eccStorageTemplate()))).toBe(
      "0023000b00030472000000060080004300100003001000000000",
    );
  });

  it("encodes a sealed keyed-hash object with scheme NULL and an HMAC key with scheme HMAC(SHA256)", () => {
    expect(hex(marshalPublic(sealTemplate(new Uint8Array(0), true)))).toBe(
      "0008000b0000045200000010" + "0000",
    );
    const hmacKey: KeyedHashPublic = { ...sealTemplate(new Uint8Array(0), true), scheme: "hmac-sha256" };
    expect(hex(marshalPublic(hmacKey))).toBe("0008000b000004520000" + "0005000b" + "0000");
  });

  const keyed = marshalPublic(sealTemplate(new Uint8Array(0), true));
  const hmacKeyed = marshalPublic({ ...sealTemplate(new Uint8Array(0), true), scheme: "hmac-sha256" });
  const ecc = marshalPublic(eccStorageTemplate());

  it.each([
    ["type RSA", patchU16(ecc, 0, TPM_ALG.RSA), /TPMT_PUBLIC\.type: algorithm RSA is not supported/],
    [
      "nameAlg SHA-1",
      patchU16(ecc, 2, TPM_ALG.SHA1),
      /TPMT_PUBLIC\.nameAlg: algorithm SHA1 is not supported/,
    ],
    ["nameAlg SHA-384", patchU16(ecc, 2, TPM_ALG.SHA384), /TPMT_PUBLIC\.nameAlg: algorithm SHA384/],
    ["keyed-hash scheme XOR", patchU16(keyed, 10, TPM_ALG.XOR), /TPMT_PUBLIC\.scheme: algorithm XOR/],
    [
      "HMAC over SHA-1",
      patchU16(hmacKeyed, 12, TPM_ALG.SHA1),
      /TPMT_PUBLIC\.scheme\.hashAlg: algorithm SHA1/,
    ],
    ["symmetric XOR", patchU16(ecc, 10, TPM_ALG.XOR), /TPMT_PUBLIC\.symmetric\.algorithm: algorithm XOR/],
    ["AES-192", patchU16(ecc, 12, 192), /TPMT_PUBLIC\.symmetric\.keyBits: 192 is not supported/],
    ["AES-CBC", patchU16(ecc, 14, 0x0042), /TPMT_PUBLIC\.symmetric\.mode: algorithm 0x0042/],
    ["ECDSA scheme", patchU16(ecc, 16, 0x0018), /TPMT_PUBLIC\.scheme: algorithm 0x0018 is not supported/],
    ["curve P-384", patchU16(ecc, 18, 0x0004), /TPMT_PUBLIC\.curveID: curve 0x4 is not supported/],
    ["KDF1-SP800-56A", patchU16(ecc, 20, 0x0020), /TPMT_PUBLIC\.kdf: algorithm 0x0020/],
  ])("refuses %s with TpmFormatError naming the field", (_, bytes, message) => {
    expect(() => parse(bytes)).toThrow(TpmFormatError);
    expect(() => parse(bytes)).toThrow(message);
  });

  it("refuses TPM2B fields above their limits: authPolicy > 64, keyed-hash unique > 64, ECC x or y > 66", () => {
    const head = (w: TpmWriter, type: number) => w.u16(type).u16(TPM_ALG.SHA256).u32(0);
    const bigPolicy = marshal((w) =>
      head(w, TPM_ALG.KEYEDHASH).tpm2b(new Uint8Array(65), 99, "").u16(0x10).u16(0),
    );
    expect(() => parse(bigPolicy)).toThrow(/TPMT_PUBLIC\.authPolicy: size 65 exceeds its limit of 64/);
    const bigUnique = marshal((w) =>
      head(w, TPM_ALG.KEYEDHASH).u16(0).u16(0x10).tpm2b(new Uint8Array(65), 99, ""),
    );
    expect(() => parse(bigUnique)).toThrow(/TPMT_PUBLIC\.unique: size 65 exceeds its limit of 64/);
    const eccHead = (w: TpmWriter) => head(w, TPM_ALG.ECC).u16(0).u16(0x10).u16(0x10).u16(3).u16(0x10);
    const bigX = marshal((w) => eccHead(w).tpm2b(new Uint8Array(67), 99, "").u16(0));
    expect(() => parse(bigX)).toThrow(/TPMT_PUBLIC\.unique\.x: size 67 exceeds its limit of 66/);
    const bigY = marshal((w) => eccHead(w).u16(0).tpm2b(new Uint8Array(67), 99, ""));
    expect(() => parse(bigY)).toThrow(/TPMT_PUBLIC\.unique\.y: size 67 exceeds its limit of 66/);
  });

  it("writePublic refuses an authPolicy or unique above its limit", () => {
    const t = sealTemplate(new Uint8Array(65), true);
    expect(() => marshalPublic(t)).toThrow(/authPolicy: 65 bytes exceeds its limit of 64/);
    const e = eccStorageTemplate();
    e.unique.x = new Uint8Array(67);
    expect(() => marshalPublic(e)).toThrow(/unique\.x: 67 bytes exceeds its limit of 66/);
  });
});

describe("TPM2B_PUBLIC", () => {
  it("round-trips, and keeps the exact TPMT_PUBLIC bytes the name is computed over (property)", () => {
    fc.assert(
      fc.property(publicArb, (p) => {
        const bytes = marshal((w) => writePublic2b(w, p));
        const got = unmarshal(bytes, "TPM2B_PUBLIC", (r) => readPublic2b(r));
        expect(got.pub).toEqual(p);
        expect(got.bytes).toEqual(marshalPublic(p));
        expect(bytes.subarray(0, 2)).toEqual(Uint8Array.of(got.bytes.length >>> 8, got.bytes.length & 0xff));
      }),
      { numRuns: 40 },
    );
  });

  const inner = marshalPublic(eccStorageTemplate());
  const read2b = (b: Uint8Array) => unmarshal(b, "x", (r) => readPublic2b(r, "outPublic"));

  it("refuses every prefix of a TPM2B_PUBLIC", () => {
    const bytes = marshal((w) => writePublic2b(w, eccStorageTemplate()));
    for (let n = 0; n < bytes.length; n++) expect(() => read2b(bytes.subarray(0, n))).toThrow(TpmFormatError);
  });

  it("refuses an empty TPM2B_PUBLIC, naming it", () => {
    expect(() => read2b(Uint8Array.of(0, 0))).toThrow(/outPublic: empty/);
  });

  it("refuses a size that covers more than the TPMT_PUBLIC (bad length: trailing bytes inside)", () => {
    const b = marshal((w) => w.tpm2b(concatBytes(inner, Uint8Array.of(0)), 1024, ""));
    expect(() => read2b(b)).toThrow(/outPublic: 1 unexpected trailing bytes/);
  });

  it("refuses a size that covers less than the TPMT_PUBLIC", () => {
    const b = marshal((w) => w.tpm2b(inner.subarray(0, inner.length - 1), 1024, ""));
    expect(() => read2b(b)).toThrow(TpmFormatError);
  });

  it("refuses a size above 1024 before reading it", () => {
    const b = marshal((w) => w.tpm2b(new Uint8Array(1025), 2000, ""));
    expect(() => read2b(b)).toThrow(/outPublic: size 1025 exceeds its limit of 1024/);
  });
});

describe("object and handle names (Part 1 §16)", () => {
  it("names an object nameAlg ‖ SHA-256(TPMT_PUBLIC), computed independently with @noble/hashes", () => {
    fc.assert(
      fc.property(publicArb, (p) => {
        const bytes = marshalPublic(p);
        expect(objectName(bytes)).toEqual(concatBytes(Uint8Array.of(0x00, 0x0b), sha256(bytes)));
      }),
      { numRuns: 20 },
    );
  });

  it("names a permanent handle by its four bytes", () => {
    expect(hex(handleName(0x4000_0001))).toBe("40000001");
    expect(hex(handleName(0x8100_0100))).toBe("81000100");
  });
});

describe("TPM2B_SENSITIVE_CREATE (Part 2 §11.1.15–16)", () => {
  const arb = fc.record({ userAuth: bytesUpTo(64), data: bytesUpTo(128) });
  const read = (b: Uint8Array) => unmarshal(b, "TPM2B_SENSITIVE_CREATE", readSensitiveCreate);

  it("round-trips userAuth and data up to their limits, refusing every prefix and a trailing byte (property)", () => {
    fc.assert(
      fc.property(arb, (s) => {
        checkCodec(s, (w, v) => w.bytes(marshalSensitiveCreate(v)), readSensitiveCreate);
      }),
      { numRuns: 40 },
    );
  });

  it("is u16 size ‖ TPM2B userAuth ‖ TPM2B data", () => {
    expect(hex(marshalSensitiveCreate({ userAuth: Uint8Array.of(1), data: Uint8Array.of(2, 3) }))).toBe(
      "0007" + "000101" + "00020203",
    );
  });

  it("refuses userAuth > 64 and data > 128 on writing and on reading, naming the field", () => {
    expect(() => marshalSensitiveCreate({ userAuth: new Uint8Array(65), data: new Uint8Array(0) })).toThrow(
      /userAuth: 65 bytes exceeds its limit of 64/,
    );
    expect(() => marshalSensitiveCreate({ userAuth: new Uint8Array(0), data: new Uint8Array(129) })).toThrow(
      /data: 129 bytes exceeds its limit of 128/,
    );
    const bigAuth = marshal((w) =>
      w.tpm2b(
        marshal((x) => x.tpm2b(new Uint8Array(65), 99, "").u16(0)),
        999,
        "",
      ),
    );
    expect(() => read(bigAuth)).toThrow(/userAuth: size 65 exceeds its limit of 64/);
    const bigData = marshal((w) =>
      w.tpm2b(
        marshal((x) => x.u16(0).tpm2b(new Uint8Array(129), 999, "")),
        999,
        "",
      ),
    );
    expect(() => read(bigData)).toThrow(/data: size 129 exceeds its limit of 128/);
  });

  it("refuses an outer size above sizeof(TPMS_SENSITIVE_CREATE) = 196, and one that leaves bytes inside", () => {
    const oversize = marshal((w) => w.tpm2b(new Uint8Array(197), 999, ""));
    expect(() => read(oversize)).toThrow(/TPM2B_SENSITIVE_CREATE: size 197 exceeds its limit of 196/);
    const slack = marshal((w) => w.tpm2b(Uint8Array.of(0, 0, 0, 0, 9), 999, ""));
    expect(() => read(slack)).toThrow(/TPM2B_SENSITIVE_CREATE: 1 unexpected trailing bytes/);
  });
});

describe("TPMT_SENSITIVE (Part 2 §12.3.2.4), keyed-hash", () => {
  const arb = fc.record({ authValue: bytesUpTo(64), seedValue: bytesUpTo(64), bits: bytesUpTo(128) });

  it("round-trips, refusing every prefix and a trailing byte (property)", () => {
    fc.assert(
      fc.property(arb, (s) => {
        const bytes = checkCodec(s, writeSensitive, readSensitive);
        expect(hex(bytes.subarray(0, 2))).toBe("0008");
      }),
      { numRuns: 40 },
    );
  });

  it("refuses another sensitiveType and oversize fields, naming them", () => {
    const ok = marshal((w) =>
      writeSensitive(w, {
        authValue: new Uint8Array(0),
        seedValue: new Uint8Array(0),
        bits: new Uint8Array(0),
      }),
    );
    const read = (b: Uint8Array) => unmarshal(b, "TPMT_SENSITIVE", readSensitive);
    expect(() => read(patchU16(ok, 0, TPM_ALG.ECC))).toThrow(
      /TPMT_SENSITIVE\.sensitiveType: algorithm ECC is not supported/,
    );
    const big = (n: number, at: number) =>
      marshal((w) => {
        w.u16(TPM_ALG.KEYEDHASH);
        for (let i = 0; i < 3; i++) w.tpm2b(new Uint8Array(i === at ? n : 0), 999, "");
      });
    expect(() => read(big(65, 0))).toThrow(/authValue: size 65 exceeds its limit of 64/);
    expect(() => read(big(65, 1))).toThrow(/seedValue: size 65 exceeds its limit of 64/);
    expect(() => read(big(129, 2))).toThrow(/sensitive\.bits: size 129 exceeds its limit of 128/);
    expect(() =>
      marshal((w) =>
        writeSensitive(w, {
          authValue: new Uint8Array(0),
          seedValue: new Uint8Array(0),
          bits: new Uint8Array(129),
        }),
      ),
    ).toThrow(/sensitive\.bits: 129 bytes exceeds/);
  });
});

describe("TPML_PCR_SELECTION (Part 2 §10.9.7)", () => {
  it("round-trips up to four banks of PCRs 0..23, refusing every prefix and a trailing byte (property)", () => {
    fc.assert(
      fc.property(fc.array(pcrSelectionArb, { maxLength: 4 }), (sels) => {
        checkCodec(sels, writePcrSelections, (r) => readPcrSelections(r));
      }),
      { numRuns: 60 },
    );
  });

  it("puts PCR n in bit n mod 8 of select byte n / 8", () => {
    const b = marshal((w) => writePcrSelections(w, [{ hash: TPM_ALG.SHA256, pcrs: [0, 7, 16, 23] }]));
    expect(hex(b)).toBe("00000001" + "000b" + "03" + "810081");
  });

  it("reads a four-byte select (PCRs up to 31) and an empty one", () => {
    const b = fromHex("00000002" + "000b" + "04" + "00000080" + "0004" + "00");
    expect(unmarshal(b, "x", (r) => readPcrSelections(r))).toEqual([
      { hash: TPM_ALG.SHA256, pcrs: [31] },
      { hash: TPM_ALG.SHA1, pcrs: [] },
    ]);
  });

  const read = (b: Uint8Array) => unmarshal(b, "x", (r) => readPcrSelections(r, "pcrSelectionOut"));

  it("refuses a count above 64, an unsupported bank and a select above 4 bytes, naming the field", () => {
    expect(() => read(fromHex("00000041"))).toThrow(/pcrSelectionOut\.count: 65 exceeds 64/);
    expect(() => read(fromHex("00000001000c03000000"))).toThrow(
      /pcrSelectionOut\[0\]\.hash: algorithm SHA384 is not supported/,
    );
    expect(() => read(fromHex("00000001000b050000000000"))).toThrow(
      /pcrSelectionOut\[0\]\.sizeofSelect: 5 exceeds 4/,
    );
    expect(() => read(fromHex("00000002000b03000000"))).toThrow(/pcrSelectionOut\[1\]\.hash/);
  });

  it("refuses to write a PCR outside 0..23", () => {
    expect(() => marshal((w) => writePcrSelections(w, [{ hash: TPM_ALG.SHA256, pcrs: [24] }]))).toThrow(
      RangeError,
    );
    expect(() => marshal((w) => writePcrSelections(w, [{ hash: TPM_ALG.SHA256, pcrs: [-1] }]))).toThrow(
      RangeError,
    );
  });
});

describe("TPML_DIGEST (Part 2 §10.9.2)", () => {
  it("round-trips up to 8 digests of up to 64 bytes, refusing every prefix and a trailing byte (property)", () => {
    fc.assert(
      fc.property(fc.array(bytesUpTo(64), { maxLength: 8 }), (ds) => {
        checkCodec(ds, writeDigests, (r) => readDigests(r));
      }),
      { numRuns: 60 },
    );
  });

  const read = (b: Uint8Array) => unmarshal(b, "x", (r) => readDigests(r, "pcrValues"));

  it("refuses a count above 8 and an entry above 64 bytes, naming the field", () => {
    expect(() => read(fromHex("00000009"))).toThrow(/pcrValues\.count: 9 exceeds 8/);
    const big = marshal((w) => w.u32(1).tpm2b(new Uint8Array(65), 99, ""));
    expect(() => read(big)).toThrow(/pcrValues\[0\]: size 65 exceeds its limit of 64/);
  });

  it("refuses to write what it would refuse to read", () => {
    expect(() => marshal((w) => writeDigests(w, [new Uint8Array(65)]))).toThrow(
      /TPML_DIGEST entry: 65 bytes/,
    );
    expect(() =>
      marshal((w) =>
        writeDigests(
          w,
          Array.from({ length: 9 }, () => new Uint8Array(32)),
        ),
      ),
    ).toThrow(TpmFormatError);
  });
});

describe("TPML_DIGEST_VALUES (Part 2 §10.9.4), SHA-256", () => {
  it("round-trips up to 8 SHA-256 digests, refusing every prefix and a trailing byte (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 8 }), (ds) => {
        checkCodec(ds, writeDigestValues, (r) => readDigestValues(r));
      }),
      { numRuns: 40 },
    );
  });

  it("is count ‖ (hashAlg ‖ digest)*", () => {
    const d = new Uint8Array(32).fill(0xee);
    expect(hex(marshal((w) => writeDigestValues(w, [d])))).toBe(`00000001000b${"ee".repeat(32)}`);
  });

  const read = (b: Uint8Array) => unmarshal(b, "x", (r) => readDigestValues(r));

  it("refuses another hash, a count above 8, and a digest that is not 32 bytes", () => {
    expect(() => read(fromHex(`000000010004${"00".repeat(20)}`))).toThrow(
      /TPML_DIGEST_VALUES\[0\]\.hashAlg: algorithm SHA1 is not supported/,
    );
    expect(() => read(fromHex("00000009"))).toThrow(/TPML_DIGEST_VALUES\.count: 9 exceeds 8/);
    expect(() => read(fromHex(`00000001000b${"00".repeat(31)}`))).toThrow(/TPML_DIGEST_VALUES\[0\]\.digest/);
    expect(() => marshal((w) => writeDigestValues(w, [new Uint8Array(31)]))).toThrow(TpmFormatError);
    expect(() =>
      marshal((w) =>
        writeDigestValues(
          w,
          Array.from({ length: 9 }, () => new Uint8Array(32)),
        ),
      ),
    ).toThrow(TpmFormatError);
  });
});

describe("TPMS_ECC_POINT (Part 2 §11.2.5.2)", () => {
  it("round-trips coordinates up to 66 bytes, refusing every prefix and a trailing byte (property)", () => {
    fc.assert(
      fc.property(fc.record({ x: bytesUpTo(66), y: bytesUpTo(66) }), (p) => {
        checkCodec(p, writeEccPoint, readEccPoint);
      }),
      { numRuns: 40 },
    );
  });

  it("refuses a coordinate above 66 bytes, naming it", () => {
    const read = (b: Uint8Array) => unmarshal(b, "x", readEccPoint);
    expect(() => read(marshal((w) => w.tpm2b(new Uint8Array(67), 99, "").u16(0)))).toThrow(
      /x: size 67 exceeds/,
    );
    expect(() => read(marshal((w) => w.u16(0).tpm2b(new Uint8Array(67), 99, "")))).toThrow(
      /y: size 67 exceeds/,
    );
    expect(() => marshal((w) => writeEccPoint(w, { x: new Uint8Array(0), y: new Uint8Array(67) }))).toThrow(
      TpmFormatError,
    );
  });
});

describe("TPMT_SYM_DEF(_OBJECT) (Part 2 §11.1.6–7)", () => {
  it("round-trips NULL, AES-128-CFB and AES-256-CFB, refusing every prefix and a trailing byte", () => {
    fc.assert(
      fc.property(symDefArb, (s) => {
        checkCodec(s, writeSymDef, (r) => readSymDef(r, "symmetric"));
      }),
    );
    expect(hex(marshal((w) => writeSymDef(w, AES128_CFB)))).toBe("000600800043");
    expect(hex(marshal((w) => writeSymDef(w, null)))).toBe("0010");
  });

  it("refuses other ciphers, key sizes and modes, naming the field", () => {
    const read = (b: Uint8Array) => unmarshal(b, "x", (r) => readSymDef(r, "symmetric"));
    expect(() => read(fromHex("000a000b"))).toThrow(/symmetric\.algorithm: algorithm XOR is not supported/);
    expect(() => read(fromHex("0025"))).toThrow(/symmetric\.algorithm: algorithm SYMCIPHER/);
    expect(() => read(fromHex("000600c00043"))).toThrow(/symmetric\.keyBits: 192 is not supported/);
    expect(() => read(fromHex("000600800044"))).toThrow(/symmetric\.mode: algorithm 0x0044 is not supported/);
  });
});

describe("TPMT_TK_CREATION (Part 2 §10.7.3)", () => {
  const read = (b: Uint8Array) => unmarshal(b, "x", (r) => readTicket(r, "creationTicket"));

  it("reads tag, hierarchy and digest", () => {
    const b = fromHex(["8021", "40000007", `0020${"ab".repeat(32)}`].join(""));
    expect(read(b)).toEqual({ tag: 0x8021, hierarchy: 0x4000_0007, digest: new Uint8Array(32).fill(0xab) });
    for (let n = 0; n < b.length; n++) expect(() => read(b.subarray(0, n))).toThrow(TpmFormatError);
  });

  it("refuses a digest above 64 bytes, naming the field", () => {
    const b = marshal((w) => w.u16(0x8021).u32(0x4000_0007).tpm2b(new Uint8Array(65), 99, ""));
    expect(() => read(b)).toThrow(/creationTicket\.digest: size 65 exceeds its limit of 64/);
  });
});

describe("TpmWriter and TpmReader agree with the structures' own writers", () => {
  it("writePublic2b's size prefix matches the TPMT_PUBLIC length", () => {
    const w = new TpmWriter();
    writePublic2b(w, eccStorageTemplate());
    const b = w.finish();
    expect((b[0] as number) * 256 + (b[1] as number)).toBe(b.length - 2);
  });
});
