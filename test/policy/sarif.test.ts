/**
 * SARIF 2.1.0 output (OASIS sarif-schema-2.1.0.json): the fields the schema
 * requires (version, runs[].tool.driver.name, results[].message), the ones
 * CI annotations need (ruleId, level, physical location with 1-based line
 * and column, rule metadata), and no field the schema's closed objects do
 * not define. Checked structurally here, since no JSON Schema validator is
 * among our dependencies.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { lintText } from "../../src/policy/lint.js";
import { RULES } from "../../src/policy/rules.js";
import { toSarif } from "../../src/policy/sarif.js";
import { POLICIES } from "./helpers.js";

/** Property names the SARIF 2.1.0 schema defines for the objects we emit (each is additionalProperties: false). */
const ALLOWED: Record<string, readonly string[]> = {
  log: ["$schema", "version", "runs", "inlineExternalProperties", "properties"],
  run: ["tool", "invocations", "results", "artifacts", "originalUriBaseIds", "properties"],
  driver: ["name", "version", "informationUri", "rules", "semanticVersion", "fullName", "properties"],
  rule: [
    "id",
    "name",
    "shortDescription",
    "fullDescription",
    "help",
    "helpUri",
    "defaultConfiguration",
    "properties",
  ],
  result: ["ruleId", "ruleIndex", "level", "message", "locations", "kind", "properties"],
  invocation: ["executionSuccessful", "toolExecutionNotifications", "properties"],
};
const LEVELS = ["none", "note", "warning", "error"];

function keysWithin(obj: object, kind: string) {
  for (const k of Object.keys(obj)) expect(ALLOWED[kind], `${kind}.${k}`).toContain(k);
}

// biome-ignore lint/suspicious/noExplicitAny: walking an untyped JSON document in a test
type Json = any;

function checkSarif(log: Json, fixtures: number) {
  keysWithin(log, "log");
  expect(log.version).toBe("2.1.0");
  expect(log.$schema).toMatch(/sarif-2\.1\.0/);
  expect(log.runs).toHaveLength(1);
  const run = log.runs[0];
  keysWithin(run, "run");
  const driver = run.tool.driver;
  keysWithin(driver, "driver");
  expect(typeof driver.name).toBe("string");
  expect(driver.rules.map((r: Json) => r.id)).toEqual(RULES.map((r) => r.id));
  for (const rule of driver.rules) {
    keysWithin(rule, "rule");
    expect(rule.shortDescription.text.length).toBeGreaterThan(0);
    expect(LEVELS).toContain(rule.defaultConfiguration.level);
  }
  for (const inv of run.invocations) {
    keysWithin(inv, "invocation");
    expect(typeof inv.executionSuccessful).toBe("boolean");
  }
  expect(run.results.length).toBeGreaterThanOrEqual(fixtures);
  for (const result of run.results) {
    keysWithin(result, "result");
    expect(typeof result.ruleId).toBe("string");
    expect(driver.rules[result.ruleIndex].id).toBe(result.ruleId);
    expect(LEVELS).toContain(result.level);
    expect(result.message.text.length).toBeGreaterThan(0);
    const loc = result.locations[0].physicalLocation;
    expect(loc.artifactLocation.uri).toMatch(/\.yaml$/);
    expect(Number.isInteger(loc.region.startLine) && loc.region.startLine >= 1).toBe(true);
    expect(Number.isInteger(loc.region.startColumn) && loc.region.startColumn >= 1).toBe(true);
  }
}

describe("SARIF output", () => {
  it("has the SARIF 2.1.0 structure for findings from every fixture", () => {
    const dir = join(POLICIES, "lint-fixtures");
    const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
    const findings = files.flatMap((f) => lintText(readFileSync(join(dir, f), "utf8"), join(dir, f)));
    const log = JSON.parse(JSON.stringify(toSarif(findings, [], "0.1.0")));
    checkSarif(log, files.length);
    expect(log.runs[0].invocations[0].executionSuccessful).toBe(true);
  });

  it("reports unusable input as a failed invocation with a notification, not as a result", () => {
    const log = toSarif(
      [],
      [{ file: "x.yaml", message: "not YAML", position: { line: 2, column: 3 } }],
      "0.1.0",
    ) as Json;
    const inv = log.runs[0].invocations[0];
    expect(inv.executionSuccessful).toBe(false);
    expect(inv.toolExecutionNotifications[0]).toMatchObject({
      level: "error",
      message: { text: "not YAML" },
      locations: [
        {
          physicalLocation: { artifactLocation: { uri: "x.yaml" }, region: { startLine: 2, startColumn: 3 } },
        },
      ],
    });
    expect(log.runs[0].results).toEqual([]);
  });
});
