/**
 * Shared by the policy tests: the repository's policies directory, and a
 * small valid policy document (as YAML and parsed) that tests extend.
 */
import { fileURLToPath } from "node:url";
import { type Policy, PolicySchema } from "../../src/policy/document.js";

export const POLICIES = fileURLToPath(new URL("../../policies/", import.meta.url));

/** Parses a plain object with the policy schema, failing the test loudly if it does not validate. */
export function policy(doc: Record<string, unknown>): Policy {
  return PolicySchema.parse({
    version: "custos-policy/v1",
    organisations: { nyu: { name: "NYU Langone" }, msk: { name: "Memorial Sloan Kettering" } },
    ...doc,
  });
}
