import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DecryptError } from "../../src/crypto/envelope.js";
import {
  parseThresholdHeader,
  thresholdBlobFromText,
  thresholdBlobToText,
  thresholdOpen,
  thresholdWrap,
} from "../../src/threshold/ecies.js";
import { G, randomScalar } from "../../src/threshold/group.js";

const x = randomScalar();
const X = G.multiply(x);
const open = (blob: Uint8Array, ctx: Record<string, string>) =>
  thresholdOpen(blob, ctx, X, parseThresholdHeader(blob).ephemeral.multiply(x));

describe("threshold ciphertext, format 2 (ECIES)", () => {
  it("round-trips any payload and context (property), through the text form", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.string({ maxLength: 20 }), { maxKeys: 4 }),
        (pt, ctx) => {
          const text = thresholdBlobToText(thresholdWrap(X, "ehr", 7, pt, ctx));
          const blob = thresholdBlobFromText(text);
          const h = parseThresholdHeader(blob);
          return (
            h.keyName === "ehr" && h.keyVersion === 7 && Buffer.from(open(blob, ctx)).equals(Buffer.from(pt))
          );
        },
      ),
      { numRuns: 30 },
    );
  });

  it("binds the context, key name and version (AAD), and every byte", () => {
    const blob = thresholdWrap(X, "ehr", 1, new Uint8Array([42]), { patient: "p1" });
    expect(() => open(blob, { patient: "p2" })).toThrow(DecryptError);
    expect(() => open(blob, {})).toThrow(DecryptError);
    const renamed = Uint8Array.from(blob);
    renamed[2] = "f".charCodeAt(0); // "fhr"
    expect(() => open(renamed, { patient: "p1" })).toThrow(DecryptError);
    for (const i of [6, 10, blob.length - 20, blob.length - 1]) {
      const t = Uint8Array.from(blob);
      t[i]! ^= 1;
      expect(() => open(t, { patient: "p1" })).toThrow(DecryptError);
    }
    // The wrong shared point (a wrong combination of partials) fails too.
    expect(() => thresholdOpen(blob, { patient: "p1" }, X, parseThresholdHeader(blob).ephemeral)).toThrow(
      DecryptError,
    );
    expect([...open(blob, { patient: "p1" })]).toEqual([42]);
  });

  it("refuses format-1 text, unknown versions, an identity ephemeral point and short blobs", () => {
    expect(() => thresholdBlobFromText("custos:v1:AQ")).toThrow(DecryptError);
    const blob = thresholdWrap(X, "ehr", 1, new Uint8Array(0), {});
    const v9 = Uint8Array.from(blob);
    v9[0] = 9;
    expect(() => parseThresholdHeader(v9)).toThrow(DecryptError);
    const identity = Uint8Array.from(blob);
    identity.fill(0, 6 + 3, 6 + 3 + 32);
    expect(() => parseThresholdHeader(identity)).toThrow(DecryptError);
    expect(() => parseThresholdHeader(blob.subarray(0, 20))).toThrow(DecryptError);
  });
});
