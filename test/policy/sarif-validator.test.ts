/**
 * `custos policy lint --format sarif` checked by Microsoft's SARIF multitool
 * (`@microsoft/sarif-multitool`, the SARIF reference implementation's
 * validator, which checks a log against the SARIF 2.1.0 JSON Schema and the
 * spec's rules): the output for every lint fixture and for the example
 * policies validates with no error, and a deliberately broken log does not,
 * so the test can fail.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../e2e/harness.js";

const run = promisify(execFile);
const multitool = createRequire(import.meta.url)("@microsoft/sarif-multitool") as string;

interface ValidationLog {
  runs: {
    results?: { level?: string; ruleId?: string; message: { arguments?: string[]; text?: string } }[];
  }[];
}

/** Runs `Sarif.Multitool validate` and returns its error-level findings. */
async function validate(file: string): Promise<string[]> {
  const out = `${file}.validation.sarif`;
  // The .NET runtime inside needs ICU unless told to run culture-invariant.
  await run(multitool, ["validate", file, "-o", out, "--log", "ForceOverwrite", "--quiet"], {
    env: { ...process.env, DOTNET_SYSTEM_GLOBALIZATION_INVARIANT: "1" },
  }).catch(() => undefined); // it exits non-zero when it finds errors; the log says which
  const log = JSON.parse(readFileSync(out, "utf8")) as ValidationLog;
  return (log.runs[0]?.results ?? [])
    .filter((r) => r.level === "error")
    .map((r) => `${r.ruleId}: ${JSON.stringify(r.message.arguments ?? r.message.text)}`);
}

describe("SARIF output against the SARIF 2.1.0 schema (Microsoft SARIF multitool)", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-sarif-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("validates the lint of every fixture and of the example policies", async () => {
    for (const [name, target] of [
      ["fixtures", "policies/lint-fixtures"],
      ["examples", "policies/examples"],
    ] as const) {
      const r = await runCli(["policy", "lint", "--format", "sarif", target]);
      expect([0, 1]).toContain(r.code);
      const file = join(dir, `${name}.sarif`);
      writeFileSync(file, r.stdout);
      const parsed = JSON.parse(r.stdout) as { runs: { results: unknown[] }[] };
      expect(parsed.runs[0]?.results.length).toBeGreaterThan(0);
      expect(await validate(file)).toEqual([]);
    }
  }, 120_000);

  it("finds the error in a log without a tool name", async () => {
    const file = join(dir, "broken.sarif");
    writeFileSync(file, JSON.stringify({ version: "2.1.0", runs: [{ tool: { driver: {} } }] }));
    const errors = await validate(file);
    expect(errors.join("\n")).toMatch(/name/);
  }, 60_000);
});
