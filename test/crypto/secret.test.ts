import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { hex } from "../../src/crypto/bytes.js";
import { Secret } from "../../src/crypto/secret.js";

const BYTES_HEX = "deadbeefcafebabe00112233";

describe("Secret", () => {
  it("never prints its bytes: toString, template strings, JSON and util.inspect", () => {
    const s = Secret.of(hex.decode(BYTES_HEX, "x"));
    const renderings = [
      String(s),
      `${s}`,
      JSON.stringify(s),
      JSON.stringify({ key: s }),
      inspect(s),
      inspect({ nested: { key: s } }, { depth: 10, showHidden: true }),
    ];
    for (const text of renderings) {
      expect(text).toContain("Secret(12 bytes)");
      // Neither as hex, nor as Buffer/Uint8Array renderings (hex pairs or decimals).
      expect(text).not.toMatch(/deadbeef|de ad|222|173|Uint8Array|Buffer/);
    }
  });

  it("hands out its bytes only through reveal(), without copying", () => {
    const bytes = Uint8Array.of(1, 2, 3);
    const s = Secret.of(bytes);
    expect(s.reveal()).toBe(bytes);
    expect(s.length).toBe(3);
  });

  it("dispose() zeroes the bytes, sets disposed and makes reveal() throw", () => {
    const bytes = Uint8Array.of(9, 9, 9);
    const s = Secret.of(bytes);
    s.dispose();
    expect(bytes).toEqual(new Uint8Array(3));
    expect(s.disposed).toBe(true);
    expect(() => s.reveal()).toThrow(/after dispose/);
    expect(s.length).toBe(3);
    expect(() => s.dispose()).not.toThrow();
  });

  it("random(n) draws n bytes", () => {
    const a = Secret.random(32);
    const b = Secret.random(32);
    expect(a.length).toBe(32);
    expect(hex.encode(a.reveal())).not.toBe(hex.encode(b.reveal()));
    expect(() => Secret.random(0)).toThrow(RangeError);
  });

  it("of() refuses anything but bytes", () => {
    expect(() => Secret.of("secret" as unknown as Uint8Array)).toThrow(TypeError);
  });

  it("structuredClone cannot carry the bytes across", () => {
    const clone = structuredClone(Secret.of(Uint8Array.of(1, 2, 3))) as unknown as Record<string, unknown>;
    expect(Object.values(clone)).toEqual([]);
  });
});
