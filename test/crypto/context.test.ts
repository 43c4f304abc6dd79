import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concatBytes, hex, u8, u32be, utf8 } from "../../src/crypto/bytes.js";
import {
  aadHash,
  assertContext,
  CONTEXT_KEY_RE,
  canonicalContext,
  MAX_CONTEXT_ENTRIES,
  MAX_CONTEXT_VALUE_BYTES,
} from "../../src/crypto/context.js";

describe("canonicalContext", () => {
  it("is u32(count) ‖ (u32(len k) ‖ k ‖ u32(len v) ‖ v) sorted by key bytes", () => {
    const out = canonicalContext({ b: "2", a: "1" });
    const expected = concatBytes(
      u32be(2),
      u32be(1),
      utf8("a"),
      u32be(1),
      utf8("1"),
      u32be(1),
      utf8("b"),
      u32be(1),
      utf8("2"),
    );
    expect(hex.encode(out)).toBe(hex.encode(expected));
  });

  it("encodes the empty context as four zero bytes", () => {
    expect(canonicalContext({})).toEqual(new Uint8Array(4));
  });

  it("sorts by UTF-8 bytes ('Z' < '_' < 'a'), not by insertion order", () => {
    const a = canonicalContext({ a: "", _: "", Z: "" });
    const b = canonicalContext({ Z: "", _: "", a: "" });
    expect(a).toEqual(b);
    expect(hex.encode(a)).toBe(
      hex.encode(concatBytes(u32be(3), ...["Z", "_", "a"].flatMap((k) => [u32be(1), utf8(k), u32be(0)]))),
    );
  });

  it("gives different encodings to different maps (no ambiguity from concatenation)", () => {
    const pairs: [Record<string, string>, Record<string, string>][] = [
      [{ a: "bc" }, { ab: "c" }],
      [{ a: "" }, {}],
      [{ a: "1", b: "2" }, { a: "1b2" }],
      [{ k: "v" }, { k: "v", l: "" }],
    ];
    for (const [x, y] of pairs)
      expect(hex.encode(canonicalContext(x))).not.toBe(hex.encode(canonicalContext(y)));
  });

  it("is injective on random contexts (property)", () => {
    const key = fc.stringMatching(/^[A-Za-z0-9._:-]{1,8}$/);
    const ctx = fc.dictionary(key, fc.string({ maxLength: 8 }), { maxKeys: 5 });
    fc.assert(
      fc.property(ctx, ctx, (x, y) => {
        const same = JSON.stringify(Object.entries(x).sort()) === JSON.stringify(Object.entries(y).sort());
        expect(hex.encode(canonicalContext(x)) === hex.encode(canonicalContext(y))).toBe(same);
      }),
    );
  });
});

describe("aadHash", () => {
  it("is H('custos/aad/v1' ‖ canonical ‖ u8(len name) ‖ name ‖ u32(version))", () => {
    const ctx = { patient: "MRN-1", institution: "nyu" };
    const expected = createHash("sha256")
      .update(concatBytes(utf8("custos/aad/v1"), canonicalContext(ctx), u8(9), utf8("ehr.notes"), u32be(3)))
      .digest();
    expect(hex.encode(aadHash(ctx, "ehr.notes", 3))).toBe(expected.toString("hex"));
  });

  it("changes with the context, the key name and the version", () => {
    const h = (c: Record<string, string>, n: string, v: number) => hex.encode(aadHash(c, n, v));
    const base = h({ a: "1" }, "k", 1);
    expect(h({ a: "2" }, "k", 1)).not.toBe(base);
    expect(h({ a: "1" }, "l", 1)).not.toBe(base);
    expect(h({ a: "1" }, "k", 2)).not.toBe(base);
  });

  it("accepts the reserved name _root and refuses names the format cannot carry", () => {
    expect(aadHash({}, "_root", 1)).toHaveLength(32);
    expect(() => aadHash({}, "", 1)).toThrow(RangeError);
    expect(() => aadHash({}, "a".repeat(129), 1)).toThrow(RangeError);
    expect(() => aadHash({}, "with space", 1)).toThrow(RangeError);
    expect(() => aadHash({}, "naïve", 1)).toThrow(RangeError);
  });

  it("refuses version 0 and versions beyond u32", () => {
    expect(() => aadHash({}, "k", 0)).toThrow(/keyVersion/);
    expect(() => aadHash({}, "k", 2 ** 32)).toThrow(/keyVersion/);
    expect(() => aadHash({}, "k", 1.5)).toThrow(TypeError);
  });
});

describe("assertContext limits", () => {
  const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));

  it(`accepts exactly ${MAX_CONTEXT_ENTRIES} entries and refuses one more, naming the limit`, () => {
    expect(() => assertContext(many(MAX_CONTEXT_ENTRIES))).not.toThrow();
    expect(() => assertContext(many(MAX_CONTEXT_ENTRIES + 1))).toThrow(RangeError);
    expect(() => assertContext(many(MAX_CONTEXT_ENTRIES + 1))).toThrow(/33 entries; at most 32/);
  });

  it("accepts 64-character keys and refuses 65, naming the key", () => {
    expect(() => assertContext({ ["k".repeat(64)]: "v" })).not.toThrow();
    expect(() => assertContext({ ["k".repeat(65)]: "v" })).toThrow(RangeError);
    expect(() => assertContext({ ["k".repeat(65)]: "v" })).toThrow(/kkkk/);
  });

  it.each(["", "has space", "slash/", "ümlaut", "tab\t", 'quote"'])(
    "refuses the key %j, naming it",
    (key) => {
      expect(() => assertContext({ [key]: "v" })).toThrow(RangeError);
      expect(() => assertContext({ [key]: "v" })).toThrow(CONTEXT_KEY_RE.source);
    },
  );

  it("refuses a '__proto__' key (it would be dropped from an ordinary object, unbinding it)", () => {
    expect(() => assertContext(JSON.parse('{"__proto__":"MRN-1"}'))).toThrow(RangeError);
  });

  it("accepts every character the key pattern allows", () => {
    expect(() => assertContext({ "Aa0._:-": "v" })).not.toThrow();
  });

  it(`accepts values of ${MAX_CONTEXT_VALUE_BYTES} UTF-8 bytes and refuses one byte more, naming key and limit`, () => {
    expect(() => assertContext({ k: "x".repeat(256) })).not.toThrow();
    expect(() => assertContext({ k: "é".repeat(128) })).not.toThrow();
    expect(() => assertContext({ patient: "x".repeat(257) })).toThrow(RangeError);
    expect(() => assertContext({ patient: `${"é".repeat(128)}x` })).toThrow(
      /'patient' is 257 bytes; at most 256/,
    );
  });

  it("refuses non-string values, naming the key", () => {
    expect(() => assertContext({ n: 1 })).toThrow(TypeError);
    expect(() => assertContext({ n: null })).toThrow(/'n'/);
  });

  it("refuses values with lone surrogates (two strings would share an encoding)", () => {
    expect(() => assertContext({ k: "a\uD800" })).toThrow(/surrogate/);
  });

  it("refuses things that are not plain objects", () => {
    expect(() => assertContext(null)).toThrow(TypeError);
    expect(() => assertContext([])).toThrow(TypeError);
    expect(() => assertContext("a=b")).toThrow(TypeError);
    expect(() => assertContext(new Map([["a", "b"]]))).toThrow(/plain object/);
    expect(() => assertContext(Object.assign(Object.create(null), { a: "b" }))).not.toThrow();
  });
});
