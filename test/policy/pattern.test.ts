/**
 * Key-name patterns: matching, the `{org}` placeholder, and the overlap test
 * the linter relies on, checked against brute-force enumeration of short names.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { instantiate, matches, overlaps } from "../../src/policy/pattern.js";

describe("key-name patterns", () => {
  it("matches literals and * (possibly empty)", () => {
    expect(matches("ehr-nyu-*", "ehr-nyu-notes")).toBe(true);
    expect(matches("ehr-nyu-*", "ehr-nyu-")).toBe(true);
    expect(matches("ehr-nyu-*", "ehr-msk-notes")).toBe(false);
    expect(matches("*-notes", "ehr-nyu-notes")).toBe(true);
    expect(matches("ehr", "ehr-nyu")).toBe(false);
  });

  it("{org} stands for the caller's organisation", () => {
    expect(instantiate("ehr-{org}-*", "nyu")).toBe("ehr-nyu-*");
    expect(matches(instantiate("ehr-{org}-*", "msk"), "ehr-nyu-notes")).toBe(false);
  });

  it("overlaps when some name matches both patterns", () => {
    expect(overlaps("ehr-*", "ehr-nyu-*")).toBe(true);
    expect(overlaps("ehr-nyu-*", "ehr-msk-*")).toBe(false);
    expect(overlaps("*-notes", "ehr-*")).toBe(true);
    expect(overlaps("a*b", "*c")).toBe(false);
  });

  const alphabet = ["a", "b", "-"];
  const pattern = fc.array(fc.constantFrom(...alphabet, "*"), { maxLength: 4 }).map((a) => a.join(""));
  const names = (max: number): string[] => {
    const out = [""];
    for (let n = 1; n <= max; n++)
      for (const s of out.filter((x) => x.length === n - 1)) for (const c of alphabet) out.push(s + c);
    return out;
  };
  const short = names(8);

  it("matches agrees with a regular expression built from the pattern (property)", () => {
    const longer = fc.array(fc.constantFrom(...alphabet, "*"), { maxLength: 10 }).map((a) => a.join(""));
    const text = fc.array(fc.constantFrom(...alphabet, "*"), { maxLength: 12 }).map((a) => a.join(""));
    fc.assert(
      fc.property(longer, text, (p, n) => {
        // Safe here: only "a", "b", "-" and "*" occur, and the inputs are tiny.
        const re = new RegExp(`^${p.replaceAll("-", "\\-").replaceAll("*", "[\\s\\S]*")}$`);
        expect(matches(p, n)).toBe(re.test(n));
      }),
      { numRuns: 2000 },
    );
  });

  it("overlaps agrees with enumerating every short name (property)", () => {
    fc.assert(
      fc.property(pattern, pattern, (a, b) => {
        const witness = short.some((n) => matches(a, n) && matches(b, n));
        // Overlapping patterns share a name no longer than their literals together (≤ 8 here).
        expect(overlaps(a, b)).toBe(witness);
        expect(overlaps(b, a)).toBe(overlaps(a, b));
      }),
      { numRuns: 300 },
    );
  });

  it("a pattern that matches another pattern's text covers every name it matches (property)", () => {
    fc.assert(
      fc.property(pattern, pattern, (a, b) => {
        if (!matches(a, b)) return;
        for (const n of short) if (matches(b, n)) expect(matches(a, n)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
