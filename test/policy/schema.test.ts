/**
 * The committed JSON Schema is the one generated from the zod schema, so
 * editors and CI that validate with it agree with custos; and the source
 * reader keeps positions and refuses text that is not YAML.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { durationMs } from "../../src/policy/document.js";
import { policyJsonSchema } from "../../src/policy/json-schema.js";
import { PolicyInputError, parsePolicy } from "../../src/policy/source.js";
import { POLICIES } from "./helpers.js";

describe("policy schema", () => {
  it("policies/schema/policy.schema.json equals the schema generated from zod (run `custos policy schema`)", () => {
    const committed = JSON.parse(readFileSync(join(POLICIES, "schema/policy.schema.json"), "utf8"));
    expect(committed).toEqual(policyJsonSchema());
  });

  it("lists the closed vocabularies: operations and HL7 purposes of use", () => {
    const text = JSON.stringify(policyJsonSchema());
    for (const word of ["ceremony-rekey", "read-audit", "ETREAT", "HRESCH"])
      expect(text).toContain(`"${word}"`);
  });

  it("parses durations and refuses malformed ones, naming the value", () => {
    expect(durationMs("24h")).toBe(86_400_000);
    expect(durationMs("30m")).toBe(1_800_000);
    expect(() => durationMs("1 day")).toThrow(/'1 day'/);
  });
});

describe("policy source", () => {
  it("refuses text that is not YAML with its position (exit 2 in the CLI)", () => {
    try {
      parsePolicy("version: custos-policy/v1\norganisations: { nyu: [\n", "bad.yaml");
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyInputError);
      expect((err as PolicyInputError).position?.line).toBeGreaterThanOrEqual(2);
    }
  });

  it("refuses duplicate keys, which YAML readers resolve differently", () => {
    expect(() => parsePolicy("version: a\nversion: b\n", "dup.yaml")).toThrow(PolicyInputError);
  });

  it("locates a path at its key, and a missing field at its object", () => {
    const src = parsePolicy(
      "version: custos-policy/v1\nroles:\n  a: {}\n  b:\n    description: x\n",
      "p.yaml",
    );
    expect(src.locate(["roles", "b", "description"])).toEqual({ line: 5, column: 5 });
    expect(src.locate(["roles", "b", "nothing"])).toEqual({ line: 4, column: 3 });
    expect(src.issues.find((i) => i.message.includes("organisations"))?.position).toEqual({
      line: 1,
      column: 1,
    });
  });

  it("refuses a __proto__ key, which would otherwise vanish into a prototype", () => {
    const src = parsePolicy("version: custos-policy/v1\nroles:\n  __proto__: { description: x }\n", "p.yaml");
    expect(src.policy).toBeNull();
    expect(src.issues).toEqual([
      { path: [], message: "'__proto__' is not allowed as a key", position: { line: 3, column: 3 } },
    ]);
  });

  it("reports an empty document as a schema finding, not a crash", () => {
    const src = parsePolicy("", "empty.yaml");
    expect(src.policy).toBeNull();
    expect(src.issues[0]?.position).toEqual({ line: 1, column: 1 });
  });
});
