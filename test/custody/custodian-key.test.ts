import { createCipheriv, createHash, randomBytes, scryptSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { b64u } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair, hpkeOpen, hpkeSeal, x25519PublicKey } from "../../src/crypto/hpke.js";
import { HOLDER_ID_RE } from "../../src/crypto/shamir.js";
import {
  CUSTODIAN_ID_RE,
  type CustodianPrivateKeyFile,
  fingerprint,
  generateCustodianKey,
  openPrivateKeyFile,
  PrivateKeyOpenError,
  parsePrivateKeyFile,
  parsePublicKeyFile,
  publicKeyFile,
} from "../../src/custody/custodian-key.js";
import { FormatError } from "../../src/custody/format-error.js";
import { formatField } from "../helpers/format-field.js";

// 2^15 is the smallest N readers accept; it keeps these tests fast.
const FAST = { scryptN: 2 ** 15 };
const reread = (x: unknown): unknown => JSON.parse(JSON.stringify(x));
const keyPromise = generateCustodianKey("alice", "correct horse battery staple", FAST);

async function expectOpenError(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => new Error("opened, but should not have"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PrivateKeyOpenError);
  expect((err as Error).message).toBe("cannot open private key: wrong passphrase or corrupted file");
}

/** FORMATS §6.2 written out with node:crypto directly, independent of the module under test. */
function referencePrivateKeyFile(
  custodian: string,
  passphrase: string,
  publicKey: Uint8Array,
  privateKey: Uint8Array,
): CustodianPrivateKeyFile {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const kek = scryptSync(passphrase, salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
  const cipher = createCipheriv("aes-256-gcm", kek, iv);
  cipher.setAAD(
    Buffer.concat([
      Buffer.from("custos/custodian-key/v1"),
      Buffer.of(custodian.length),
      Buffer.from(custodian),
      publicKey,
    ]),
  );
  const ciphertext = Buffer.concat([cipher.update(privateKey), cipher.final(), cipher.getAuthTag()]);
  return {
    format: "custos-custodian-private-key/v1",
    custodian,
    kem: "DHKEM-X25519-HKDF-SHA256",
    publicKey: b64u.encode(publicKey),
    kdf: { name: "scrypt", N: 2 ** 15, r: 8, p: 1, salt: b64u.encode(salt) },
    cipher: "AES-256-GCM",
    iv: b64u.encode(iv),
    ciphertext: b64u.encode(ciphertext),
  };
}

describe("custodian key files", () => {
  it("round-trip: generate, write as JSON, read back, open with the passphrase", async () => {
    const { publicFile, privateFile } = await keyPromise;
    expect(publicFile).toMatchObject({
      format: "custos-custodian-public-key/v1",
      custodian: "alice",
      kem: "DHKEM-X25519-HKDF-SHA256",
    });
    expect(privateFile).toMatchObject({
      format: "custos-custodian-private-key/v1",
      custodian: "alice",
      kem: "DHKEM-X25519-HKDF-SHA256",
      publicKey: publicFile.publicKey,
      kdf: { name: "scrypt", N: 2 ** 15, r: 8, p: 1 },
      cipher: "AES-256-GCM",
    });
    const pub = parsePublicKeyFile(reread(publicFile));
    const priv = await openPrivateKeyFile(
      parsePrivateKeyFile(reread(privateFile)),
      "correct horse battery staple",
    );
    expect(priv.length).toBe(32);
    expect(x25519PublicKey(priv)).toEqual(pub.publicKey);
    // And the pair works for what it is for: opening HPKE sealed to the public key.
    const info = new TextEncoder().encode("info");
    const { enc, ciphertext } = await hpkeSeal(
      pub.publicKey,
      new Uint8Array([1, 2, 3]),
      info,
      new Uint8Array(0),
    );
    expect(await hpkeOpen(priv, enc, ciphertext, info, new Uint8Array(0))).toEqual(new Uint8Array([1, 2, 3]));
  });

  it("uses N = 2^17 by default", async () => {
    const { privateFile } = await generateCustodianKey("bob", "pw");
    expect(privateFile.kdf.N).toBe(2 ** 17);
  });

  it("accepts the passphrase as bytes, and a string in any Unicode normal form", async () => {
    const { privateFile } = await generateCustodianKey("carol", "caf\u00e9", FAST);
    await expect(openPrivateKeyFile(privateFile, "cafe\u0301")).resolves.toBeDefined();
    await expect(
      openPrivateKeyFile(privateFile, new TextEncoder().encode("caf\u00e9")),
    ).resolves.toBeDefined();
  });

  it("a wrong passphrase gives the one 'cannot open' error", async () => {
    const { privateFile } = await keyPromise;
    await expectOpenError(openPrivateKeyFile(privateFile, "Correct horse battery staple"));
  });

  it("a tampered file gives the same error as a wrong passphrase", async () => {
    const { privateFile } = await keyPromise;
    const flipByte = (text: string) => {
      const b = b64u.decode(text, "field");
      b[0]! ^= 0x01;
      return b64u.encode(b);
    };
    const other = generateX25519KeyPair();
    const tampered: CustodianPrivateKeyFile[] = [
      { ...privateFile, ciphertext: flipByte(privateFile.ciphertext) },
      { ...privateFile, iv: flipByte(privateFile.iv) },
      { ...privateFile, kdf: { ...privateFile.kdf, salt: flipByte(privateFile.kdf.salt) } },
      { ...privateFile, kdf: { ...privateFile.kdf, N: 2 ** 16 } },
      { ...privateFile, custodian: "mallory" },
      { ...privateFile, publicKey: b64u.encode(other.publicKey) },
    ];
    for (const file of tampered)
      await expectOpenError(openPrivateKeyFile(file, "correct horse battery staple"));
  });

  it("refuses downgraded or unusual KDF parameters before deriving anything, naming the parameter", async () => {
    const { privateFile } = await keyPromise;
    const cases: [string, CustodianPrivateKeyFile][] = [
      ["kdf.N", { ...privateFile, kdf: { ...privateFile.kdf, N: 2 ** 14 } }],
      ["kdf.N", { ...privateFile, kdf: { ...privateFile.kdf, N: 2 } }],
      ["kdf.N", { ...privateFile, kdf: { ...privateFile.kdf, N: 2 ** 21 } }],
      ["kdf.N", { ...privateFile, kdf: { ...privateFile.kdf, N: 3 * 2 ** 15 } }],
      ["kdf.r", { ...privateFile, kdf: { ...privateFile.kdf, r: 1 } }],
      ["kdf.p", { ...privateFile, kdf: { ...privateFile.kdf, p: 2 } }],
      ["kdf.name", { ...privateFile, kdf: { ...privateFile.kdf, name: "pbkdf2" as "scrypt" } }],
    ];
    for (const [field, file] of cases) {
      expect(formatField(() => parsePrivateKeyFile(file))).toBe(field);
      await expect(openPrivateKeyFile(file, "correct horse battery staple")).rejects.toThrow(FormatError);
    }
  });

  it("parsePrivateKeyFile refuses each malformed field, naming it", async () => {
    const { privateFile } = await keyPromise;
    const base = reread(privateFile) as Record<string, unknown>;
    const cases: [string, unknown][] = [
      ["format", { ...base, format: "custos-custodian-private-key/v2" }],
      ["custodian", { ...base, custodian: "Alice" }],
      ["kem", { ...base, kem: "DHKEM-P256-HKDF-SHA256" }],
      ["publicKey", { ...base, publicKey: "AAAA" }],
      ["kdf", { ...base, kdf: "scrypt" }],
      ["kdf.salt", { ...base, kdf: { ...(base.kdf as object), salt: "AAAA" } }],
      ["kdf.extra", { ...base, kdf: { ...(base.kdf as object), extra: 1 } }],
      ["cipher", { ...base, cipher: "AES-128-GCM" }],
      ["iv", { ...base, iv: b64u.encode(new Uint8Array(16)) }],
      ["ciphertext", { ...base, ciphertext: b64u.encode(new Uint8Array(32)) }],
      ["extra", { ...base, extra: true }],
    ];
    for (const [field, json] of cases)
      expect(
        formatField(() => parsePrivateKeyFile(json)),
        field,
      ).toBe(field);
  });

  it("opens a file sealed by an independent implementation of §6.2", async () => {
    const pair = generateX25519KeyPair();
    const file = referencePrivateKeyFile("dora", "pw", pair.publicKey, pair.privateKey.reveal());
    const opened = await openPrivateKeyFile(parsePrivateKeyFile(file), "pw");
    expect(opened.reveal()).toEqual(pair.privateKey.reveal());
  });

  it("refuses a file that decrypts but whose private key does not belong to its public key", async () => {
    const named = generateX25519KeyPair();
    const inside = generateX25519KeyPair();
    const file = referencePrivateKeyFile("dora", "pw", named.publicKey, inside.privateKey.reveal());
    await expectOpenError(openPrivateKeyFile(file, "pw"));
  });

  it("refuses an empty passphrase, an invalid custodian id and a weak or odd N when generating", async () => {
    await expect(generateCustodianKey("alice", "", FAST)).rejects.toThrow(/passphrase/);
    await expect(generateCustodianKey("Alice", "pw", FAST)).rejects.toThrow(/custodian/);
    await expect(generateCustodianKey("alice", "pw", { scryptN: 2 ** 14 })).rejects.toThrow(/scryptN/);
    await expect(generateCustodianKey("alice", "pw", { scryptN: 3 * 2 ** 15 })).rejects.toThrow(
      /power of two/,
    );
  });
});

describe("public key files", () => {
  it("fingerprint is sha256: ‖ b64u(SHA-256(publicKey))", async () => {
    const { publicFile } = await keyPromise;
    const pk = b64u.decode(publicFile.publicKey, "pk");
    const expected = `sha256:${createHash("sha256").update(pk).digest("base64url")}`;
    expect(fingerprint(pk)).toBe(expected);
    expect(publicFile.fingerprint).toBe(expected);
  });

  it("takes the custodian id from the file, or from the file name when the field is absent", async () => {
    const { publicFile } = await keyPromise;
    expect(parsePublicKeyFile(reread(publicFile), "renamed").custodian).toBe("alice");
    const { custodian: _, ...anonymous } = publicFile;
    expect(parsePublicKeyFile(anonymous, "alice").custodian).toBe("alice");
    expect(formatField(() => parsePublicKeyFile(anonymous))).toBe("custodian");
    expect(formatField(() => parsePublicKeyFile(anonymous, "Not Valid"))).toBe("custodian");
  });

  it("recomputes the fingerprint and refuses a file whose fingerprint does not match", async () => {
    const { publicFile } = await keyPromise;
    const other = publicKeyFile("alice", generateX25519KeyPair().publicKey);
    const mixed = { ...publicFile, fingerprint: other.fingerprint };
    expect(formatField(() => parsePublicKeyFile(mixed))).toBe("fingerprint");
    const swapped = { ...publicFile, publicKey: other.publicKey };
    expect(formatField(() => parsePublicKeyFile(swapped))).toBe("fingerprint");
  });

  it("refuses a low-order public key and malformed fields, naming them", async () => {
    const { publicFile } = await keyPromise;
    const zero = new Uint8Array(32);
    const lowOrder = { ...publicFile, publicKey: b64u.encode(zero), fingerprint: fingerprint(zero) };
    expect(formatField(() => parsePublicKeyFile(lowOrder))).toBe("publicKey");
    expect(formatField(() => parsePublicKeyFile({ ...publicFile, format: "x" }))).toBe("format");
    expect(formatField(() => parsePublicKeyFile({ ...publicFile, kem: "x" }))).toBe("kem");
    expect(
      formatField(() => parsePublicKeyFile({ ...publicFile, publicKey: `${publicFile.publicKey}=` })),
    ).toBe("publicKey");
    expect(formatField(() => parsePublicKeyFile({ ...publicFile, comment: "hi" }))).toBe("comment");
  });

  it("custodian ids follow FORMATS, and Shamir holder ids follow the same rule", () => {
    expect(CUSTODIAN_ID_RE.source).toBe(HOLDER_ID_RE.source);
    expect(CUSTODIAN_ID_RE.test("alice")).toBe(true);
    expect(CUSTODIAN_ID_RE.test("a".repeat(64))).toBe(true);
    expect(CUSTODIAN_ID_RE.test("a".repeat(65))).toBe(false);
    expect(CUSTODIAN_ID_RE.test("_alice")).toBe(false);
  });
});
