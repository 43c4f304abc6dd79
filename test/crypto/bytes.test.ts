import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  abytes,
  aint,
  b64u,
  concatBytes,
  constantTimeEqual,
  hex,
  randomBytes,
  u8,
  u32be,
  u64be,
  utf8,
  zero,
} from "../../src/crypto/bytes.js";

describe("b64u", () => {
  it("round-trips any bytes and encodes without padding (RFC 4648 §5)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = b64u.encode(bytes);
        expect(text).toMatch(/^[A-Za-z0-9_-]*$/);
        expect(b64u.decode(text, "x")).toEqual(bytes);
      }),
    );
  });

  it("matches the RFC 4648 §10 test vectors (base64 alphabet and padding aside)", () => {
    const cases: [string, string][] = [
      ["", ""],
      ["f", "Zg"],
      ["fo", "Zm8"],
      ["foo", "Zm9v"],
      ["foob", "Zm9vYg"],
      ["fooba", "Zm9vYmE"],
      ["foobar", "Zm9vYmFy"],
    ];
    for (const [plain, text] of cases) {
      expect(b64u.encode(utf8(plain))).toBe(text);
      expect(b64u.decode(text, "x")).toEqual(utf8(plain));
    }
    expect(b64u.encode(Uint8Array.of(0xfb, 0xff))).toBe("-_8");
  });

  it.each([
    ["padding", "Zg=="],
    ["single padding", "Zm8="],
    ["whitespace", "Zm9v Yg"],
    ["a newline", "Zm9v\nYg"],
    ["the standard alphabet's +", "+/8"],
    ["a non-alphabet character", "Zm9v*g"],
    ["an impossible length", "Zm9vY"],
    ["non-zero trailing bits", "Zh"],
  ])("refuses %s and names the argument", (_, text) => {
    expect(() => b64u.decode(text, "ciphertext")).toThrow(RangeError);
    expect(() => b64u.decode(text, "ciphertext")).toThrow(/ciphertext/);
  });

  it("refuses a non-string with a TypeError", () => {
    expect(() => b64u.decode(42 as unknown as string, "field")).toThrow(TypeError);
  });

  it("returns a plain Uint8Array with its own buffer", () => {
    const out = b64u.decode("Zm9v", "x");
    expect(out.constructor).toBe(Uint8Array);
    expect(out.byteOffset).toBe(0);
    expect(out.buffer.byteLength).toBe(3);
  });
});

describe("hex", () => {
  it("round-trips and encodes lowercase", () => {
    expect(hex.encode(Uint8Array.of(0, 0xab, 0xff))).toBe("00abff");
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        expect(hex.decode(hex.encode(b), "x")).toEqual(b);
      }),
    );
  });

  it.each([
    ["uppercase", "ABCD"],
    ["an odd length", "abc"],
    ["a non-hex character", "zz"],
    ["a 0x prefix", "0xab"],
  ])("refuses %s and names the argument", (_, text) => {
    expect(() => hex.decode(text, "initId")).toThrow(/initId/);
  });
});

describe("integers and concatenation", () => {
  it("encodes u8, u32be and u64be big-endian", () => {
    expect(u8(0xfe)).toEqual(Uint8Array.of(0xfe));
    expect(u32be(0x01020304)).toEqual(Uint8Array.of(1, 2, 3, 4));
    expect(u64be(2 ** 40 + 5)).toEqual(Uint8Array.of(0, 0, 1, 0, 0, 0, 0, 5));
    expect(u64be(Number.MAX_SAFE_INTEGER)).toEqual(
      Uint8Array.of(0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
    );
  });

  it.each([
    ["u8(256)", () => u8(256)],
    ["u8(-1)", () => u8(-1)],
    ["u32be(2^32)", () => u32be(2 ** 32)],
    ["u64be(2^53)", () => u64be(2 ** 53)],
    ["u64be(-1)", () => u64be(-1)],
  ])("refuses out-of-range %s with a RangeError", (_, f) => {
    expect(f).toThrow(RangeError);
  });

  it("refuses non-integers with a TypeError", () => {
    expect(() => u8(1.5)).toThrow(TypeError);
    expect(() => u32be(Number.NaN)).toThrow(TypeError);
  });

  it("concatenates in order", () => {
    expect(concatBytes(Uint8Array.of(1), new Uint8Array(0), Uint8Array.of(2, 3))).toEqual(
      Uint8Array.of(1, 2, 3),
    );
    expect(() => concatBytes(Uint8Array.of(1), "x" as unknown as Uint8Array)).toThrow(/parts\[1\]/);
  });
});

describe("utf8", () => {
  it("encodes well-formed strings, astral characters included", () => {
    expect(utf8("é😀")).toEqual(Uint8Array.of(0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80));
  });

  it("refuses lone surrogates, which TextEncoder would turn into U+FFFD", () => {
    expect(() => utf8("a\uD800", "value")).toThrow(/value.*surrogate/);
    expect(() => utf8("\uDC00b")).toThrow(RangeError);
  });
});

describe("assertions", () => {
  it("abytes: TypeError for a non-Uint8Array, RangeError for a wrong length, both naming the argument", () => {
    expect(() => abytes("x", "nonce")).toThrow(TypeError);
    expect(() => abytes("x", "nonce")).toThrow(/nonce/);
    expect(() => abytes(new Uint8Array(3), "nonce", 32)).toThrow(RangeError);
    expect(() => abytes(new Uint8Array(3), "nonce", 32)).toThrow(/nonce must be 32 bytes, got 3/);
    expect(() => abytes(Buffer.alloc(32), "nonce", 32)).not.toThrow();
  });

  it("aint: TypeError for a non-integer, RangeError outside the range", () => {
    expect(() => aint("1", "index", 1, 5)).toThrow(TypeError);
    expect(() => aint(6, "index", 1, 5)).toThrow(/index must be between 1 and 5, got 6/);
  });
});

describe("constantTimeEqual", () => {
  it("is true for equal bytes, false for different bytes or lengths", () => {
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3))).toBe(false);
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 3))).toBe(false);
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
  });
});

describe("randomBytes and zero", () => {
  it("gives n fresh bytes in an unshared plain Uint8Array", () => {
    const a = randomBytes(32);
    const b = randomBytes(32);
    expect(a.constructor).toBe(Uint8Array);
    expect(a.buffer.byteLength).toBe(32);
    expect(constantTimeEqual(a, b)).toBe(false);
    expect(() => randomBytes(-1)).toThrow(RangeError);
  });

  it("zero wipes every buffer and skips undefined", () => {
    const a = Uint8Array.of(1, 2);
    const b = Uint8Array.of(3);
    zero(a, undefined, b, null);
    expect(a).toEqual(new Uint8Array(2));
    expect(b).toEqual(new Uint8Array(1));
  });
});
