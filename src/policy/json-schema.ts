/**
 * The JSON Schema of policy documents, generated from the zod schema so the
 * two cannot drift: policies/schema/policy.schema.json is this function's
 * output (`custos policy schema`), and a test fails when the committed file
 * differs. It describes the document as written (`io: "input"`), so fields
 * with defaults are optional, as they are in YAML. Cross-references and the
 * separation-of-duty rules are the linter's, beyond what JSON Schema says.
 */
import { z } from "zod";
import { PolicySchema } from "./document.js";

export const POLICY_SCHEMA_ID = "https://custos.example/schema/policy.schema.json";

export function policyJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(PolicySchema, { io: "input", target: "draft-2020-12" });
  return { ...generated, $id: POLICY_SCHEMA_ID, title: "custos policy document" };
}

/** The schema as JSON text; the committed file is this, formatted by biome (the test compares values). */
export function policyJsonSchemaText(): string {
  return `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
}
