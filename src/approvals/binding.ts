/**
 * What an approval approves: the exact parameters of one operation, bound
 * by their canonical JSON (RFC 8785, the audit chain's serialiser) and its
 * SHA-256. The same function binds the parameters when an approval is
 * requested and when it is redeemed, so "the operation runs only with the
 * parameters approved" is one string comparison of two hashes: a different
 * key, purpose, request body or policy document gives a different hash.
 * The parameters name the operation itself, so an approval to destroy one
 * key can never be spent on anything else.
 *
 * Format 2 (`custos-approval/v2`, docs/FORMATS.md §9): the body of a key-use
 * operation (datakey, encrypt, decrypt, rewrap) carries patient data — the
 * encryption context names patients, a plaintext is a record — and every
 * policy principal may read an approval. So such a body is bound by its
 * keyed MAC under the audit key (a plain hash of `{purpose, context}` could
 * be brute-forced over MRNs), and what approvers see of it is what the audit
 * log keeps: the context's keys with HMAC'd values, the configured clear
 * keys' values as given. Administrative bodies (a rekey's tree, a key's
 * settings) carry no patient data and stay readable, since approvers must
 * see the change they approve. Format 1 bound every body in the clear; an
 * approval recorded in it is refused at execution and its body is withheld
 * from views.
 */
import { createHash } from "node:crypto";
import type { EventContext } from "../audit/audit-context.js";
import { canonicalJson } from "../audit/chain.js";
import { CustosError } from "../errors.js";
import { type PolicyOperation, USE_OPERATIONS } from "../policy/document.js";

export const APPROVAL_FORMAT = "custos-approval/v2";
/** The MAC label of a key-use body (domain separation from the audit-context HMACs under the same key). */
export const APPROVAL_BODY_LABEL = "custos/approval-body/v1";

/** The parameters of a request, as sent: bound by `bindParameters`. */
export interface BoundParameters {
  operation: PolicyOperation;
  /** The key, for key operations. */
  key?: string;
  purpose: string;
  /** SHA-256 (hex) of the policy document a policy change loads. */
  digest?: string;
  /** The request's JSON body, for operations that carry one (rekey, update, decrypt, …). */
  body?: Readonly<Record<string, unknown>>;
}

/** The audit key's part in binding a key-use body; null while sealed (no key). */
export interface BodyProtector {
  /** b64u HMAC-SHA256 under the audit key of `label ‖ 0x00 ‖ data`. */
  keyedDigest(label: string, data: string): string | null;
  /** The context as an audit event keeps it (HMAC'd values, configured clear keys as given). */
  eventContext(context: Record<string, string> | undefined): EventContext;
}

export interface Binding {
  /** Canonical JSON of the parameters. */
  params: string;
  /** SHA-256 of `params`, hex. */
  paramsHash: string;
}

const USE: ReadonlySet<string> = new Set(USE_OPERATIONS);

/** Whether an operation's body is bound by MAC and shown only as its HMAC'd context. */
export function bodyIsProtected(operation: string): boolean {
  return USE.has(operation);
}

export function bindParameters(p: BoundParameters, protector: BodyProtector): Binding {
  let params: string;
  try {
    const bound: Record<string, unknown> = {
      format: APPROVAL_FORMAT,
      operation: p.operation,
      key: p.key,
      purpose: p.purpose,
      digest: p.digest,
    };
    if (p.body !== undefined && bodyIsProtected(p.operation)) {
      const mac = protector.keyedDigest(APPROVAL_BODY_LABEL, canonicalJson(p.body));
      if (mac === null) {
        throw new CustosError(
          503,
          "sealed",
          `binding a ${p.operation} body needs the audit key: unseal first`,
        );
      }
      bound.bodyMac = mac;
      const shown = protector.eventContext(stringEntries(p.body.context));
      bound.context = shown.context;
      bound.clearContext = shown.clearContext;
    } else {
      bound.body = p.body;
    }
    params = canonicalJson(bound);
  } catch (err) {
    if (err instanceof CustosError) throw err;
    // null, fractions and lone surrogates have no canonical form: such a request cannot be approved.
    throw new CustosError(
      400,
      "invalid_parameters",
      `the request's parameters cannot be bound to an approval: ${(err as Error).message}`,
    );
  }
  return { params, paramsHash: createHash("sha256").update(params, "utf8").digest("hex") };
}

/** Whether stored parameters are of the current format (format 1 had none and bound bodies in the clear). */
export function isCurrentFormat(params: Readonly<Record<string, unknown>>): boolean {
  return params.format === APPROVAL_FORMAT;
}

/** The top-level fields in which two bound parameter sets differ (names only: values may be MACs). */
export function differingFields(a: string, b: string): string[] {
  const x = JSON.parse(a) as Record<string, unknown>;
  const y = JSON.parse(b) as Record<string, unknown>;
  return [...new Set([...Object.keys(x), ...Object.keys(y)])]
    .filter((k) => JSON.stringify(x[k]) !== JSON.stringify(y[k]))
    .sort();
}

/** The SHA-256 of a policy document's bytes, as PolicyEngine.digest reports it. */
export function documentDigest(bytes: string | Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function stringEntries(value: unknown): Record<string, string> | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === "string") out[k] = v;
  return out;
}
