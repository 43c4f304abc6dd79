import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { marshal, TpmFormatError, TpmReader, TpmWriter, unmarshal } from "../../src/tpm/marshal.js";
import { hex } from "./support.js";

describe("TpmWriter", () => {
  it("writes integers big-endian (Part 1 §18: TPM structures are big-endian)", () => {
    const b = new TpmWriter().u8(0xab).u16(0x0102).u32(0x0304_0506).finish();
    expect(hex(b)).toBe("ab010203040506");
  });

  it("refuses integers outside their width instead of truncating them", () => {
    const w = new TpmWriter();
    expect(() => w.u8(256)).toThrow(RangeError);
    expect(() => w.u8(-1)).toThrow(RangeError);
    expect(() => w.u8(1.5)).toThrow(RangeError);
    expect(() => w.u16(0x1_0000)).toThrow(RangeError);
    expect(() => w.u16(-1)).toThrow(RangeError);
    expect(() => w.u16(0.5)).toThrow(RangeError);
    expect(() => w.u32(2 ** 32)).toThrow(RangeError);
    expect(() => w.u32(-1)).toThrow(RangeError);
    expect(w.length).toBe(0);
  });

  it("writes a TPM2B as u16 size then the bytes, and refuses one above the structure's limit, naming it", () => {
    expect(hex(marshal((w) => w.tpm2b(Uint8Array.of(7, 8, 9), 3, "x")))).toBe("0003070809");
    expect(hex(marshal((w) => w.tpm2b(new Uint8Array(0), 0, "x")))).toBe("0000");
    expect(() => new TpmWriter().tpm2b(new Uint8Array(4), 3, "authPolicy")).toThrow(TpmFormatError);
    expect(() => new TpmWriter().tpm2b(new Uint8Array(4), 3, "authPolicy")).toThrow(
      /authPolicy: 4 bytes exceeds its limit of 3/,
    );
  });

  it("finish() can be called twice and keeps the length", () => {
    const w = new TpmWriter().u16(1);
    expect(w.finish()).toEqual(w.finish());
    expect(w.length).toBe(2);
  });
});

describe("TpmReader", () => {
  it("reads back what the writer wrote, any sequence of u8/u16/u32/TPM2B (property)", () => {
    const field = fc.oneof(
      fc.record({ k: fc.constant("u8" as const), v: fc.integer({ min: 0, max: 0xff }) }),
      fc.record({ k: fc.constant("u16" as const), v: fc.integer({ min: 0, max: 0xffff }) }),
      fc.record({ k: fc.constant("u32" as const), v: fc.integer({ min: 0, max: 0xffff_ffff }) }),
      fc.record({ k: fc.constant("b" as const), v: fc.uint8Array({ maxLength: 80 }) }),
    );
    fc.assert(
      fc.property(fc.array(field, { maxLength: 12 }), (fields) => {
        const w = new TpmWriter();
        for (const f of fields) {
          if (f.k === "b") w.tpm2b(f.v, 80, "b");
          else w[f.k](f.v);
        }
        const bytes = w.finish();
        expect(bytes.length).toBe(w.length);
        const r = new TpmReader(bytes);
        for (const f of fields) {
          if (f.k === "b") expect(r.tpm2b(80, "b")).toEqual(f.v);
          else expect(r[f.k]("v")).toBe(f.v);
        }
        r.done("all");
      }),
    );
  });

  it("refuses to read past its end, naming the field and what was left", () => {
    expect(() => new TpmReader(new Uint8Array(0)).u8("tag")).toThrow(/tag: needs 1 bytes, 0 left/);
    expect(() => new TpmReader(new Uint8Array(1)).u16("tag")).toThrow(/tag: needs 2 bytes, 1 left/);
    expect(() => new TpmReader(new Uint8Array(3)).u32("size")).toThrow(/size: needs 4 bytes, 3 left/);
    expect(() => new TpmReader(new Uint8Array(3)).bytes(4, "digest")).toThrow(TpmFormatError);
    expect(() => new TpmReader(new Uint8Array(3)).sub(4, "inner")).toThrow(/inner: needs 4 bytes, 3 left/);
  });

  it("does not move when a read fails", () => {
    const r = new TpmReader(Uint8Array.of(1, 2, 3));
    expect(() => r.u32("x")).toThrow(TpmFormatError);
    expect(r.offset).toBe(0);
    expect(r.u16("y")).toBe(0x0102);
  });

  it("refuses a negative or fractional byte count rather than moving backwards", () => {
    const r = new TpmReader(Uint8Array.of(1, 2, 3, 4));
    r.u16("first");
    expect(() => r.bytes(-1, "digest")).toThrow(RangeError);
    expect(() => r.bytes(1.5, "digest")).toThrow(RangeError);
    expect(() => r.sub(-2, "inner")).toThrow(RangeError);
    expect(r.offset).toBe(2);
    expect(r.u16("second")).toBe(0x0304);
  });

  it("refuses a TPM2B above the structure's limit before reading its contents", () => {
    const buf = marshal((w) => w.tpm2b(new Uint8Array(65), 100, "x"));
    expect(() => new TpmReader(buf).tpm2b(64, "authPolicy")).toThrow(
      /authPolicy: size 65 exceeds its limit of 64/,
    );
    expect(new TpmReader(buf).tpm2b(65, "authPolicy")).toHaveLength(65);
  });

  it("refuses a TPM2B whose size runs past the buffer", () => {
    const buf = Uint8Array.of(0x00, 0x05, 1, 2, 3);
    expect(() => new TpmReader(buf).tpm2b(64, "nonce")).toThrow(/nonce: needs 5 bytes, 3 left/);
    expect(() => new TpmReader(Uint8Array.of(0x00)).tpm2b(64, "nonce")).toThrow(/nonce\.size/);
  });

  it("copies bytes out, so later changes to the buffer do not reach the result", () => {
    const buf = Uint8Array.of(0, 2, 9, 9);
    const got = new TpmReader(buf).tpm2b(2, "x");
    buf.fill(0);
    expect(hex(got)).toBe("0909");
  });

  it("reads a Uint8Array view at an offset into a larger buffer correctly", () => {
    const backing = Uint8Array.of(0xff, 0xff, 0x12, 0x34, 0x56, 0x78, 0xff);
    const view = backing.subarray(2, 6);
    const r = new TpmReader(view);
    expect(r.u32("v")).toBe(0x1234_5678);
    r.done("view");
    expect(() => r.u8("past")).toThrow(TpmFormatError);
  });

  it("sub() gives a reader bounded to n bytes and skips the parent past them", () => {
    const r = new TpmReader(Uint8Array.of(1, 2, 3, 4, 5));
    const inner = r.sub(2, "inner");
    expect(inner.remaining).toBe(2);
    expect(() => inner.u32("wide")).toThrow(/wide: needs 4 bytes, 2 left/);
    expect(inner.u16("x")).toBe(0x0102);
    inner.done("inner");
    expect(r.offset).toBe(2);
    expect(r.remaining).toBe(3);
  });

  it("done() refuses trailing bytes, naming the structure and how many", () => {
    const r = new TpmReader(Uint8Array.of(1, 2, 3));
    r.u8("x");
    expect(() => r.done("TPM2B_PUBLIC")).toThrow(/TPM2B_PUBLIC: 2 unexpected trailing bytes/);
  });

  it("refuses bounds outside its buffer", () => {
    const buf = new Uint8Array(4);
    expect(() => new TpmReader(buf, 0, 5)).toThrow(RangeError);
    expect(() => new TpmReader(buf, -1)).toThrow(RangeError);
    expect(() => new TpmReader(buf, 3, 2)).toThrow(RangeError);
    expect(new TpmReader(buf, 1, 3).remaining).toBe(2);
  });
});

describe("marshal / unmarshal", () => {
  it("unmarshal refuses trailing bytes after the structure", () => {
    const buf = marshal((w) => w.u16(1).u8(0));
    expect(() => unmarshal(buf, "TPM2_GetRandom response", (r) => r.u16("x"))).toThrow(
      /TPM2_GetRandom response: 1 unexpected trailing bytes/,
    );
    expect(unmarshal(buf.subarray(0, 2), "x", (r) => r.u16("x"))).toBe(1);
  });
});
