/**
 * Lint results as SARIF 2.1.0 (OASIS), the format CI systems (GitHub code
 * scanning, GitLab, Azure DevOps) turn into annotations on the lines of a
 * pull request. One run, one driver whose `rules` carry every rule's
 * metadata (so a viewer can show help for a rule that did not fire), and
 * one result per finding with its rule, level, message and physical location
 * (file URI relative to where the linter ran, 1-based line and column). Files
 * that could not be read are tool execution notifications, not results:
 * they are failures of the run, not findings about a policy.
 */
import { isAbsolute } from "node:path";
import { pathToFileURL } from "node:url";
import type { LocatedFinding } from "./lint.js";
import { RULES } from "./rules.js";
import type { Position } from "./source.js";

export const SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json";
export const TOOL_NAME = "custos-policy-lint";

export interface UnusableInput {
  file: string;
  message: string;
  position?: Position;
}

/** A relative path stays relative (CI resolves it against the checkout); an absolute one becomes a file: URI. */
function artifactUri(file: string): string {
  return isAbsolute(file) ? pathToFileURL(file).href : file.split("\\").join("/");
}

function location(file: string, position: Position | undefined) {
  return {
    physicalLocation: {
      artifactLocation: { uri: artifactUri(file) },
      ...(position && { region: { startLine: position.line, startColumn: position.column } }),
    },
  };
}

export function toSarif(
  findings: readonly LocatedFinding[],
  unusable: readonly UnusableInput[],
  toolVersion: string,
): Record<string, unknown> {
  const index = new Map<string, number>(RULES.map((r, i) => [r.id, i]));
  return {
    $schema: SARIF_SCHEMA,
    version: "2.1.0",
    runs: [
      {
        tool: {
          driver: {
            name: TOOL_NAME,
            version: toolVersion,
            informationUri: "https://github.com/custos/custos/blob/main/docs/POLICY.md",
            rules: RULES.map((r) => ({
              id: r.id,
              name: r.name,
              shortDescription: { text: r.summary },
              fullDescription: { text: r.summary },
              help: { text: r.help },
              defaultConfiguration: { level: r.level },
            })),
          },
        },
        invocations: [
          {
            executionSuccessful: unusable.length === 0,
            toolExecutionNotifications: unusable.map((u) => ({
              level: "error",
              message: { text: u.message },
              locations: [location(u.file, u.position)],
            })),
          },
        ],
        results: findings.map((f) => ({
          ruleId: f.ruleId,
          ruleIndex: index.get(f.ruleId),
          level: f.level,
          message: { text: f.message },
          locations: [location(f.file, f.position)],
        })),
      },
    ],
  };
}
