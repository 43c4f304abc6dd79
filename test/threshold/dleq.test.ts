import { describe, expect, it } from "vitest";
import {
  batchVerifyDleq,
  type DleqStatement,
  decodeDleq,
  encodeDleq,
  proveDleq,
  verifyDleq,
} from "../../src/threshold/dleq.js";
import { G, mod, randomScalar } from "../../src/threshold/group.js";

function statement(x: bigint): DleqStatement {
  const r = G.multiply(randomScalar());
  return { context: new Uint8Array([1, 2, 3]), y: G.multiply(x), r, p: r.multiply(x) };
}

describe("Chaum–Pedersen DLEQ", () => {
  it("a valid proof verifies, alone and in a batch, and survives encoding", () => {
    const x = randomScalar();
    const s = statement(x);
    const proof = proveDleq(x, s);
    expect(verifyDleq(s, proof)).toBe(true);
    expect(verifyDleq(s, decodeDleq(encodeDleq(proof), "proof"))).toBe(true);
    const more = [1, 2, 3].map(() => {
      const xi = randomScalar();
      const si = { ...statement(xi), r: s.r };
      si.p = s.r.multiply(xi);
      return { s: si, proof: proveDleq(xi, si) };
    });
    expect(batchVerifyDleq([{ s, proof }, ...more])).toBe(true);
  });

  it("fails when any input changes: context, Y, R, P, A, B or z", () => {
    const x = randomScalar();
    const s = statement(x);
    const proof = proveDleq(x, s);
    const other = G.multiply(randomScalar());
    const cases: [DleqStatement, typeof proof][] = [
      [{ ...s, context: new Uint8Array([1, 2, 4]) }, proof],
      [{ ...s, y: s.y.add(G) }, proof],
      [{ ...s, r: other }, proof],
      [{ ...s, p: s.p.add(G) }, proof],
      [s, { ...proof, a: proof.a.add(G) }],
      [s, { ...proof, b: proof.b.add(G) }],
      [s, { ...proof, z: mod(proof.z + 1n) }],
    ];
    for (const [st, pr] of cases) {
      expect(verifyDleq(st, pr)).toBe(false);
      expect(
        batchVerifyDleq([
          { s, proof },
          { s: st, proof: pr },
        ]),
      ).toBe(false);
    }
  });

  it("a partial computed with another share does not verify against Y", () => {
    const x = randomScalar();
    const s = statement(x);
    const wrong = randomScalar();
    const forged = { ...s, p: s.r.multiply(wrong) };
    expect(verifyDleq(forged, proveDleq(wrong, { ...forged, y: G.multiply(wrong) }))).toBe(false);
  });

  it("refuses malformed proof bytes", () => {
    expect(() => decodeDleq(new Uint8Array(95), "proof")).toThrow(RangeError);
    expect(() => decodeDleq(new Uint8Array(96), "proof")).toThrow(/identity|valid/);
    const bytes = encodeDleq(proveDleq(1n, statement(1n)));
    bytes.fill(0xff, 64);
    expect(() => decodeDleq(bytes, "proof")).toThrow(/canonical/);
  });
});
