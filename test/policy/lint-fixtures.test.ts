/**
 * Every lint rule has a fixture in policies/lint-fixtures/ named after its
 * id, and each fixture triggers exactly that rule (coalition notes aside,
 * which every policy with keys or custody gets); the example policies lint
 * clean. A new rule without a fixture fails the first test.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { lintText } from "../../src/policy/lint.js";
import { RULES } from "../../src/policy/rules.js";
import { POLICIES } from "./helpers.js";

const FIXTURES = join(POLICIES, "lint-fixtures");
const fixtures = readdirSync(FIXTURES).filter((f) => f.endsWith(".yaml"));
const lint = (path: string) => lintText(readFileSync(path, "utf8"), path);

describe("lint fixtures", () => {
  it("exist for every rule, one per rule", () => {
    expect(fixtures.map((f) => f.slice(0, 6)).sort()).toEqual(RULES.map((r) => r.id).sort());
  });

  for (const fixture of fixtures) {
    const ruleId = fixture.slice(0, 6);
    it(`${fixture} triggers ${ruleId} and no other rule`, () => {
      const findings = lint(join(FIXTURES, fixture));
      const ids = new Set(
        findings.filter((f) => ruleId === "CUS100" || f.level !== "note").map((f) => f.ruleId),
      );
      expect([...ids]).toEqual([ruleId]);
      for (const f of findings) {
        expect(f.position.line).toBeGreaterThan(1);
        expect(f.position.column).toBeGreaterThanOrEqual(1);
      }
    });
  }

  it("reports schema errors at the offending line and column", () => {
    const findings = lint(join(FIXTURES, "CUS001-schema.yaml"));
    const text = readFileSync(join(FIXTURES, "CUS001-schema.yaml"), "utf8").split("\n");
    const unknown = findings.find((f) => f.message.includes("'organization'"))!;
    expect(text[unknown.position.line - 1]!.slice(unknown.position.column - 1)).toMatch(/^organization:/);
    expect(unknown.message).toContain("did you mean 'organisation'");
    const purpose = findings.find((f) => f.message.includes("TREATMENT"))!;
    expect(text[purpose.position.line - 1]!.slice(purpose.position.column - 1)).toMatch(/^TREATMENT/);
  });

  it("names the people who could act, with their organisation", () => {
    const cus010 = lint(join(FIXTURES, "CUS010-custody-single-organisation.yaml")).find(
      (f) => f.ruleId === "CUS010",
    )!;
    expect(cus010.message).toBe(
      "Alice Chen (alice) and Bob Park (bob), both of NYU Langone, together can reconstruct the root key: require custody.minOrganisations ≥ 2",
    );
    const cus008 = lint(join(FIXTURES, "CUS008-approvals-single-organisation.yaml"))[0]!;
    expect(cus008.message).toContain("Kim Tran (kim) and Lee Young (lee), both of NYU Langone");
  });
});

describe("example policies", () => {
  const examples = readdirSync(join(POLICIES, "examples")).filter((f) => f.endsWith(".yaml"));

  for (const example of examples) {
    it(`${example} lints clean: no errors, no warnings`, () => {
      const findings = lint(join(POLICIES, "examples", example));
      expect(findings.filter((f) => f.level !== "note")).toEqual([]);
    });
  }

  it("the consortium: the root key needs four custodians of two hospitals; destroying a key needs three hospitals", () => {
    const notes = lint(join(POLICIES, "examples/consortium.yaml"));
    const root = notes.find((n) => n.path[0] === "custody")!;
    expect(root.message).toMatch(/can reconstruct the root key, and with it every key \(4 share holders\)/);
    expect(root.message).toMatch(/of .*, .*\) together/);
    expect(notes.filter((n) => n.path[0] === "keys").map((n) => n.message)).toEqual([
      expect.stringContaining("alone can decrypt ehr-weill-*"),
      "Kim Tran (kim), Lee Young (lee) and Jo Adams (jo) (of Weill Cornell Medicine, NYU Langone, Memorial Sloan Kettering) together can destroy ehr-weill-* (3 principal(s), approvals included)",
      expect.stringContaining("alone can decrypt ehr-nyu-*"),
      expect.stringContaining("together can destroy ehr-nyu-*"),
      expect.stringContaining("alone can decrypt ehr-msk-*"),
      expect.stringContaining("together can destroy ehr-msk-*"),
    ]);
  });
});
