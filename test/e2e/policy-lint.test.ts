/**
 * `custos policy lint` as CI runs it: the real command as a process on the
 * repository's fixtures and examples, checking exit codes (0 clean or
 * warnings only, 1 errors, 2 unusable input) and the text, JSON and SARIF
 * output.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { POLICIES } from "../policy/helpers.js";
import { runCli } from "./harness.js";

const FIXTURES = join(POLICIES, "lint-fixtures");
const fixture = (id: string) => join(FIXTURES, readdirSync(FIXTURES).find((f) => f.startsWith(id))!);

describe("custos policy lint", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "custos-policy-"));
    writeFileSync(join(dir, "broken.yaml"), "version: custos-policy/v1\norganisations: { nyu: [\n");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("exits 0 on the example consortium and prints its coalitions", async () => {
    const r = await runCli(["policy", "lint", join(POLICIES, "examples/consortium.yaml")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/note CUS100 coalition\/smallest: .* can reconstruct the root key/);
    expect(r.stdout).toContain("1 file: 0 errors, 0 warnings, 7 notes");
  });

  it("exits 1 on a fixture with an error, with file:line:column and the rule", async () => {
    const path = fixture("CUS003");
    const r = await runCli(["policy", "lint", path]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      `${path}:13:49: error CUS003 sod/conflicting-roles: principal omar holds conflicting roles`,
    );
  });

  it("exits 0 when the findings are warnings only", async () => {
    const r = await runCli(["policy", "lint", fixture("CUS008")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("warning CUS008");
  });

  it("lints a directory: every fixture, each rule reported, exit 1", async () => {
    const r = await runCli(["policy", "lint", "--format", "json", FIXTURES]);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.summary.files).toBe(readdirSync(FIXTURES).filter((f) => f.endsWith(".yaml")).length);
    expect(new Set(out.findings.map((f: { ruleId: string }) => f.ruleId)).size).toBe(out.summary.files);
  });

  it("exits 2 on text that is not YAML and on a missing file, still linting the rest", async () => {
    const r = await runCli([
      "policy",
      "lint",
      join(dir, "broken.yaml"),
      join(dir, "missing.yaml"),
      fixture("CUS003"),
    ]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/broken\.yaml:\d+:\d+: unusable: not YAML/);
    expect(r.stdout).toMatch(/missing\.yaml: unusable: cannot read: ENOENT/);
    expect(r.stdout).toContain("error CUS003");
    expect(r.stderr).toContain("could not be linted");
  });

  it("writes SARIF 2.1.0 that CI can annotate", async () => {
    const r = await runCli(["policy", "lint", "--format", "sarif", fixture("CUS005")]);
    expect(r.code).toBe(1);
    const log = JSON.parse(r.stdout);
    expect(log.version).toBe("2.1.0");
    const result = log.runs[0].results.find((x: { ruleId: string }) => x.ruleId === "CUS005");
    expect(result).toMatchObject({
      level: "error",
      locations: [{ physicalLocation: { region: { startLine: 16, startColumn: 5 } } }],
    });
  });

  it("exits 2 on an unknown --format", async () => {
    const r = await runCli(["policy", "lint", "--format", "xml", fixture("CUS003")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--format must be text, json or sarif");
  });
});
