import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hex, utf8 } from "../../src/crypto/bytes.js";
import {
  generateX25519KeyPair,
  HpkeOpenError,
  hpkeOpen,
  hpkeSeal,
  isUsableX25519PublicKey,
  x25519PublicKey,
} from "../../src/crypto/hpke.js";
import { Secret } from "../../src/crypto/secret.js";

const info = utf8("custos/test/v1");
const aad = utf8("aad");

describe("hpkeSeal / hpkeOpen", () => {
  it("round-trips random plaintexts, info and aad", async () => {
    const { publicKey, privateKey } = generateX25519KeyPair();
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 512 }),
        fc.uint8Array({ maxLength: 128 }),
        fc.uint8Array({ maxLength: 64 }),
        async (pt, i, a) => {
          const { enc, ciphertext } = await hpkeSeal(publicKey, pt, i, a);
          expect(enc).toHaveLength(32);
          expect(ciphertext).toHaveLength(pt.length + 16);
          expect(await hpkeOpen(privateKey, enc, ciphertext, i, a)).toEqual(pt);
        },
      ),
      { numRuns: 50 },
    );
  });

  it("fails with HpkeOpenError for another key, other info, other aad, altered enc or ciphertext", async () => {
    const { publicKey, privateKey } = generateX25519KeyPair();
    const other = generateX25519KeyPair();
    const { enc, ciphertext } = await hpkeSeal(publicKey, utf8("share"), info, aad);
    const flip = (b: Uint8Array, i: number) => {
      const c = Uint8Array.from(b);
      c[i]! ^= 1;
      return c;
    };
    const attempts: (() => Promise<Uint8Array>)[] = [
      () => hpkeOpen(other.privateKey, enc, ciphertext, info, aad),
      () => hpkeOpen(privateKey, enc, ciphertext, utf8("custos/test/v2"), aad),
      () => hpkeOpen(privateKey, enc, ciphertext, info, utf8("other")),
      () => hpkeOpen(privateKey, flip(enc, 0), ciphertext, info, aad),
      () => hpkeOpen(privateKey, flip(ciphertext, 0), ciphertext, info, aad),
      () => hpkeOpen(privateKey, enc, flip(ciphertext, ciphertext.length - 1), info, aad),
      () => hpkeOpen(privateKey, enc.subarray(0, 31), ciphertext, info, aad),
      () => hpkeOpen(privateKey, enc, ciphertext.subarray(0, 15), info, aad),
      () => hpkeOpen(privateKey, new Uint8Array(32), ciphertext, info, aad),
    ];
    for (const attempt of attempts) await expect(attempt()).rejects.toThrow(HpkeOpenError);
  });

  it("refuses to seal to a low-order public key", async () => {
    for (const bad of [new Uint8Array(32), Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0))]) {
      expect(isUsableX25519PublicKey(bad)).toBe(false);
      await expect(hpkeSeal(bad, utf8("x"), info, aad)).rejects.toThrow();
    }
  });

  it("refuses keys of the wrong length or type, naming the argument", async () => {
    await expect(hpkeSeal(new Uint8Array(31), utf8("x"), info, aad)).rejects.toThrow(/recipientPublicKey/);
    await expect(
      hpkeOpen(Secret.random(31), new Uint8Array(32), new Uint8Array(16), info, aad),
    ).rejects.toThrow(/recipientPrivateKey/);
    await expect(
      hpkeOpen(new Uint8Array(32) as unknown as Secret, new Uint8Array(32), new Uint8Array(16), info, aad),
    ).rejects.toThrow(TypeError);
  });

  it("leaves the caller's private key intact after opening", async () => {
    const { publicKey, privateKey } = generateX25519KeyPair();
    const before = hex.encode(privateKey.reveal());
    const { enc, ciphertext } = await hpkeSeal(publicKey, utf8("x"), info, aad);
    await hpkeOpen(privateKey, enc, ciphertext, info, aad);
    await hpkeOpen(privateKey, enc, ciphertext, info, aad);
    expect(hex.encode(privateKey.reveal())).toBe(before);
  });
});

describe("X25519 keys", () => {
  it("generates distinct key pairs whose public key is derived from the private key", () => {
    const a = generateX25519KeyPair();
    const b = generateX25519KeyPair();
    expect(a.publicKey).toHaveLength(32);
    expect(a.privateKey.length).toBe(32);
    expect(x25519PublicKey(a.privateKey)).toEqual(a.publicKey);
    expect(hex.encode(a.publicKey)).not.toBe(hex.encode(b.publicKey));
    expect(isUsableX25519PublicKey(a.publicKey)).toBe(true);
  });

  it("matches RFC 7748 §6.1 (Alice's key pair)", () => {
    const sk = hex.decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "sk");
    expect(hex.encode(x25519PublicKey(Secret.of(sk)))).toBe(
      "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    );
  });
});
