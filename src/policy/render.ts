/**
 * Lint results for people and scripts: `text` is one line per finding in the
 * `file:line:column: level RULE name: message` form editors and terminals
 * make clickable, then a count; `json` is the same findings with their
 * document paths. SARIF, for CI annotations, is sarif.ts.
 */
import type { LocatedFinding } from "./lint.js";
import { ruleInfo } from "./rules.js";
import type { UnusableInput } from "./sarif.js";

export interface LintSummary {
  files: number;
  errors: number;
  warnings: number;
  notes: number;
  unusable: number;
}

export function summarise(
  files: number,
  findings: readonly LocatedFinding[],
  unusable: readonly UnusableInput[],
) {
  const count = (level: string) => findings.filter((f) => f.level === level).length;
  return {
    files,
    errors: count("error"),
    warnings: count("warning"),
    notes: count("note"),
    unusable: unusable.length,
  } satisfies LintSummary;
}

export function renderText(
  findings: readonly LocatedFinding[],
  unusable: readonly UnusableInput[],
  summary: LintSummary,
): string {
  const lines = unusable.map(
    (u) => `${u.file}${u.position ? `:${u.position.line}:${u.position.column}` : ""}: unusable: ${u.message}`,
  );
  for (const f of findings) {
    lines.push(
      `${f.file}:${f.position.line}:${f.position.column}: ${f.level} ${f.ruleId} ${ruleInfo(f.ruleId).name}: ${f.message}`,
    );
  }
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  lines.push(
    `${plural(summary.files, "file")}: ${plural(summary.errors, "error")}, ${plural(summary.warnings, "warning")}, ${plural(summary.notes, "note")}${summary.unusable ? `, ${summary.unusable} unusable` : ""}`,
  );
  return lines.join("\n");
}

export function renderJson(
  findings: readonly LocatedFinding[],
  unusable: readonly UnusableInput[],
  summary: LintSummary,
): Record<string, unknown> {
  return {
    summary,
    unusable,
    findings: findings.map((f) => ({
      file: f.file,
      line: f.position.line,
      column: f.position.column,
      ruleId: f.ruleId,
      rule: ruleInfo(f.ruleId).name,
      level: f.level,
      message: f.message,
      path: f.path,
    })),
  };
}
