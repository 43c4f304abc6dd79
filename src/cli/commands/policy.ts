/**
 * `custos policy lint PATH... [--format text|json|sarif]` checks policy
 * documents offline, for CI: exit 0 when no finding is an error (warnings and
 * notes allowed), 1 when one is, 2 when an input is unusable (unreadable, not
 * YAML) — the other files are still linted and reported. A directory means
 * the *.yaml and *.yml files directly in it. `custos policy schema` prints
 * the JSON Schema that policies/schema/policy.schema.json holds.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { policyJsonSchemaText } from "../../policy/json-schema.js";
import { type LocatedFinding, lintText } from "../../policy/lint.js";
import { renderJson, renderText, summarise } from "../../policy/render.js";
import { toSarif, type UnusableInput } from "../../policy/sarif.js";
import { PolicyInputError } from "../../policy/source.js";
import { CliError, EXIT } from "../client.js";

const FORMATS = ["text", "json", "sarif"] as const;

function toolVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/** The files named: a directory stands for its YAML files; a path that cannot be read is unusable. */
function expand(paths: readonly string[], unusable: UnusableInput[]): string[] {
  const files: string[] = [];
  for (const path of paths) {
    try {
      if (statSync(path).isDirectory()) {
        const yaml = readdirSync(path)
          .filter((f) => /\.ya?ml$/.test(f))
          .sort();
        if (yaml.length === 0)
          unusable.push({ file: path, message: "directory holds no .yaml or .yml files" });
        files.push(...yaml.map((f) => join(path, f)));
      } else {
        files.push(path);
      }
    } catch (err) {
      unusable.push({ file: path, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? err}` });
    }
  }
  return files;
}

export function lintFiles(paths: readonly string[]) {
  const unusable: UnusableInput[] = [];
  const findings: LocatedFinding[] = [];
  const files = expand(paths, unusable);
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      unusable.push({ file, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? err}` });
      continue;
    }
    try {
      findings.push(...lintText(text, file));
    } catch (err) {
      if (!(err instanceof PolicyInputError)) throw err;
      unusable.push({ file, message: err.message, ...(err.position && { position: err.position }) });
    }
  }
  return { files, findings, unusable };
}

export function policyCommands(program: Command): void {
  const policy = program.command("policy").description("policy documents: lint them, print their schema");
  policy
    .command("lint <paths...>")
    .description("check policy documents (files or directories of .yaml) for CI")
    .option("--format <format>", "text, json or sarif", "text")
    .action((paths: string[], opts: { format: string }) => {
      const format = opts.format;
      if (!(FORMATS as readonly string[]).includes(format)) {
        throw new CliError("--format must be text, json or sarif", EXIT.usage);
      }
      const { files, findings, unusable } = lintFiles(paths);
      const summary = summarise(files.length, findings, unusable);
      const out =
        format === "sarif"
          ? JSON.stringify(toSarif(findings, unusable, toolVersion()), null, 2)
          : format === "json"
            ? JSON.stringify(renderJson(findings, unusable, summary), null, 2)
            : renderText(findings, unusable, summary);
      process.stdout.write(`${out}\n`);
      if (unusable.length > 0) {
        process.stderr.write(
          `custos: ${unusable.length} input(s) could not be linted; fix or remove them (see the lines marked unusable)\n`,
        );
      }
      process.exitCode = unusable.length > 0 ? EXIT.usage : summary.errors > 0 ? EXIT.refused : EXIT.ok;
    });
  policy
    .command("schema")
    .description("print the JSON Schema of policy documents (policies/schema/policy.schema.json)")
    .action(() => {
      process.stdout.write(policyJsonSchemaText());
    });
}
