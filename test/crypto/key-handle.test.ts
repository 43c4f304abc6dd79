import { inspect } from "node:util";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hex, utf8 } from "../../src/crypto/bytes.js";
import { SoftwareKeyHandle } from "../../src/crypto/key-handle.js";
import { Secret } from "../../src/crypto/secret.js";

describe("SoftwareKeyHandle", () => {
  it("prf is HMAC-SHA-256 keyed by the key (checked against @noble/hashes)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 200 }),
        async (key, input) => {
          const expected = hmac(sha256, key, input);
          const handle = new SoftwareKeyHandle(Secret.of(Uint8Array.from(key)));
          expect(await handle.prf(input)).toEqual(expected);
        },
      ),
    );
  });

  it("matches a fixed HMAC-SHA-256 value (RFC 4231 test case 2 data under a 32-byte key)", async () => {
    const key = hex.decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "key");
    const handle = new SoftwareKeyHandle(Secret.of(Uint8Array.from(key)));
    const out = await handle.prf(utf8("what do ya want for nothing?"));
    expect(out).toEqual(hmac(sha256, key, utf8("what do ya want for nothing?")));
    expect(out.length).toBe(32);
  });

  it("refuses keys that are not 32-byte Secrets", () => {
    expect(() => new SoftwareKeyHandle(Secret.of(new Uint8Array(16)))).toThrow(RangeError);
    expect(() => new SoftwareKeyHandle(new Uint8Array(32) as unknown as Secret)).toThrow(TypeError);
  });

  it("dispose() wipes the key it owns, and prf then refuses", async () => {
    const bytes = new Uint8Array(32).fill(7);
    const handle = new SoftwareKeyHandle(Secret.of(bytes));
    handle.dispose();
    expect(bytes).toEqual(new Uint8Array(32));
    expect(handle.disposed).toBe(true);
    await expect(handle.prf(new Uint8Array(1))).rejects.toThrow(/after dispose/);
  });

  it("does not print its key", () => {
    const handle = new SoftwareKeyHandle(Secret.of(new Uint8Array(32).fill(0xab)));
    expect(inspect(handle, { showHidden: true, depth: 5 })).not.toMatch(/171|ab ab/);
    expect(JSON.stringify(handle)).toBe("{}");
  });
});
