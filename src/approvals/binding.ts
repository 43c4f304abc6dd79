/**
 * What an approval approves: the exact parameters of one operation, bound
 * by their canonical JSON (RFC 8785, the audit chain's serialiser) and its
 * SHA-256. The same function binds the parameters when an approval is
 * requested and when it is redeemed, so "the operation runs only with the
 * parameters approved" is one string comparison of two hashes: a different
 * key, purpose, request body or policy document gives a different hash.
 * The parameters name the operation itself, so an approval to destroy one
 * key can never be spent on anything else.
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "../audit/chain.js";
import { CustosError } from "../errors.js";
import type { PolicyOperation } from "../policy/document.js";

export interface BoundParameters {
  operation: PolicyOperation;
  /** The key, for key operations. */
  key?: string;
  purpose: string;
  /** SHA-256 (hex) of the policy document a policy change loads. */
  digest?: string;
  /** The request's JSON body, for operations that carry one (rekey, update, …). */
  body?: Readonly<Record<string, unknown>>;
}

export interface Binding {
  /** Canonical JSON of the parameters. */
  params: string;
  /** SHA-256 of `params`, hex. */
  paramsHash: string;
}

export function bindParameters(p: BoundParameters): Binding {
  let params: string;
  try {
    params = canonicalJson({
      operation: p.operation,
      key: p.key,
      purpose: p.purpose,
      digest: p.digest,
      body: p.body,
    });
  } catch (err) {
    // null, fractions and lone surrogates have no canonical form: such a request cannot be approved.
    throw new CustosError(
      400,
      "invalid_parameters",
      `the request's parameters cannot be bound to an approval: ${(err as Error).message}`,
    );
  }
  return { params, paramsHash: createHash("sha256").update(params, "utf8").digest("hex") };
}

/** The SHA-256 of a policy document's bytes, as PolicyEngine.digest reports it. */
export function documentDigest(bytes: string | Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}
