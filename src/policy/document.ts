/**
 * The policy document: its zod schema (the one source of truth; the JSON
 * Schema in policies/schema/ is generated from it) and the types the linter
 * and the decision function read. The schema checks shape only — closed
 * vocabularies (operations, purposes of use), identifier syntax, bounds —
 * and leaves cross-references (a grant naming an undeclared role) to the
 * linter, which can point at the exact place and say what is missing.
 * Every object is strict: a misspelt field is an error, never silently
 * ignored, because an ignored `conditions` would widen a grant.
 */
import { z } from "zod";
import { CONTEXT_KEY_RE } from "../crypto/context.js";
import { CUSTODIAN_ID_RE } from "../custody/custodian-key.js";
import { PURPOSES_OF_USE } from "../keys/purpose.js";

export const POLICY_VERSION = "custos-policy/v1";

/** Using a key: what a storage service or clinician does. */
export const USE_OPERATIONS = ["datakey", "encrypt", "decrypt", "rewrap"] as const;
/** Administering a key: its life cycle (`update`: enable/disable, minimum decryption version, rotation period, cancelling a destruction). */
export const ADMIN_OPERATIONS = ["create", "rotate", "update", "disable", "destroy"] as const;
/** Reading one key's description (never its material). */
export const INSPECT_OPERATIONS = ["read"] as const;
/** Operations on the node rather than on a key: listing keys, minting, listing and revoking tokens, the TPM seal. */
export const NODE_OPERATIONS = [
  "list",
  "token-create",
  "token-read",
  "token-revoke",
  "tpm-seal-read",
  "tpm-seal-write",
] as const;
/** Ceremony steps on the root key (ARCHITECTURE.md, "Custody: the seal"). */
export const CEREMONY_OPERATIONS = [
  "ceremony-init",
  "ceremony-unseal",
  "ceremony-seal",
  "ceremony-rekey",
  "ceremony-rotate-root",
  "ceremony-generate-recovery",
] as const;
export const OPERATIONS = [
  ...USE_OPERATIONS,
  ...ADMIN_OPERATIONS,
  ...INSPECT_OPERATIONS,
  ...NODE_OPERATIONS,
  "read-audit",
  "policy-change",
  ...CEREMONY_OPERATIONS,
] as const;
export type PolicyOperation = (typeof OPERATIONS)[number];
export type UseOperation = (typeof USE_OPERATIONS)[number];

const KEY_OPS: ReadonlySet<string> = new Set([...USE_OPERATIONS, ...ADMIN_OPERATIONS, ...INSPECT_OPERATIONS]);
/** Operations that act on one named key (the others act on the node or the audit log). */
export function isKeyOperation(op: string): boolean {
  return KEY_OPS.has(op);
}

/** Identifiers of organisations, roles, principals, grants: the custodian id syntax, so a custodian's principal id is its share holder id. */
export const ID_RE = CUSTODIAN_ID_RE;
/** A key name (`^[a-z0-9][a-z0-9._-]*$`) with `*` for any run of name characters and `{org}` for the caller's organisation. */
export const KEY_PATTERN_RE = /^(?:[a-z0-9._*-]|\{org\}){1,128}$/;
/** A duration: a whole number of seconds, minutes, hours or days. */
export const DURATION_RE = /^[1-9][0-9]{0,6}[smhd]$/;
/** The values a condition may compare a context entry with besides literals. */
export const CALLER_REFS = ["$caller.organisation", "$caller.id"] as const;

const Id = (what: string) => z.string().regex(ID_RE, `${what} must match ${ID_RE.source}`);
const Ids = (what: string) => z.array(Id(what)).max(256);
const Text = z.string().min(1).max(1000);
const KeyPattern = z
  .string()
  .regex(KEY_PATTERN_RE, "key pattern must be a key name with * wildcards and {org} placeholders");
const ContextKey = z
  .string()
  .regex(CONTEXT_KEY_RE, `context keys must match ${CONTEXT_KEY_RE.source}`)
  .describe("an encryption-context entry name, e.g. institution");
const Duration = z.string().regex(DURATION_RE, "duration must be like 30m, 24h or 7d");
const Operation = z.enum(OPERATIONS);
const Purpose = z.enum(PURPOSES_OF_USE);

const Organisation = z.strictObject({ name: Text });
const Role = z.strictObject({ description: Text.optional() });

const Principal = z.strictObject({
  name: Text.optional().describe("how reports name this principal, e.g. Alice Chen"),
  kind: z.enum(["person", "service"]).default("person"),
  organisation: Id("organisation"),
  roles: Ids("role").min(1),
});

const IdentityRule = z
  .strictObject({
    id: Id("identity rule id"),
    issuer: Text.describe("the token issuer (iss) this rule accepts"),
    match: z
      .record(z.string().min(1).max(128), z.string().max(1000))
      .default({})
      .describe("claims that must equal these values (or, for array claims, contain them)"),
    principalClaim: z.string().min(1).max(128).default("sub"),
    organisation: Id("organisation"),
    kind: z.enum(["person", "service"]).default("person"),
    roles: Ids("role").min(1),
  })
  .describe("maps identity-token claims to a principal, its organisation and roles");

const Conflict = z.strictObject({
  roles: z.tuple([Id("role"), Id("role")]),
  reason: Text.optional(),
});

const KeyDeclaration = z.strictObject({
  pattern: KeyPattern,
  organisation: Id("organisation").describe("the organisation whose records the keys protect"),
  context: z
    .record(ContextKey, z.string().max(256))
    .optional()
    .describe("context entries every ciphertext under these keys carries, e.g. institution: nyu"),
  description: Text.optional(),
});

const Condition = z.union([
  z.strictObject({
    context: ContextKey,
    equals: z.string().max(256).describe("a literal, $caller.organisation or $caller.id"),
  }),
  z.strictObject({ context: ContextKey, oneOf: z.array(z.string().max(256)).min(1).max(256) }),
]);

/**
 * Whom a `token-create` grant lets its holder mint tokens for: declared
 * principals whose name matches a pattern (`{org}` is the minter's
 * organisation) and whose roles are all among `roles`. src/policy/minting.ts
 * adds what no rule can widen: same organisation, no conflicting roles with
 * the minter, never an approver, custodian, reviewer or minter.
 */
const MintRule = z
  .strictObject({
    mint: z
      .array(KeyPattern)
      .min(1)
      .max(256)
      .describe("principal-name patterns (* wildcards, {org} for the minter's organisation)"),
    roles: Ids("role").min(1).describe("the minted principal's declared roles must all be among these"),
  })
  .describe("whom a token-create grant lets its holder mint tokens for");

const Grant = z.strictObject({
  id: Id("grant id"),
  description: Text.optional(),
  roles: Ids("role").min(1),
  organisations: Ids("organisation")
    .optional()
    .describe("only principals of these organisations (default: all)"),
  keys: z.array(KeyPattern).max(256).default([]),
  operations: z.array(Operation).min(1),
  purposes: z.array(Purpose).describe("purposes of use allowed; an empty list allows nothing"),
  conditions: z.array(Condition).max(32).default([]),
  acrossOrganisations: z
    .boolean()
    .default(false)
    .describe("acknowledges that the grant reaches other organisations' keys on purpose"),
  tokens: MintRule.optional(),
});

const Eligible = z.strictObject({
  roles: Ids("role").default([]),
  principals: Ids("principal").default([]),
});

const BreakGlass = z.strictObject({
  roles: Ids("role").min(1),
  keys: z.array(KeyPattern).min(1).max(256),
  operations: z.array(z.enum(USE_OPERATIONS)).min(1),
  review: z
    .strictObject({ roles: Ids("role").min(1), within: Duration })
    .optional()
    .describe("who reviews each break-glass use (never the user), and how soon"),
});

const Approval = z.strictObject({
  id: Id("approval rule id"),
  operations: z.array(Operation).min(1),
  keys: z.array(KeyPattern).max(256).default(["*"]),
  required: z.number().int().min(1).max(16),
  eligible: Eligible,
  distinctOrganisations: z
    .boolean()
    .default(false)
    .describe("approvers come from pairwise distinct organisations"),
  outsideRequesterOrganisation: z.boolean().default(false),
  expiresAfter: Duration,
});

const Custody = z.strictObject({
  holders: Eligible.describe("who may hold shares of the root key"),
  threshold: z.number().int().min(1).max(255).describe("shares needed to reconstruct the root key"),
  minOrganisations: z.number().int().min(1).max(255).default(1),
  maxPerOrganisation: z.number().int().min(1).max(255).optional(),
  forbidConflictingRoles: z.boolean().default(true),
});

export const PolicySchema = z
  .strictObject({
    version: z.literal(POLICY_VERSION),
    description: Text.optional(),
    organisations: z.record(Id("organisation"), Organisation),
    roles: z.record(Id("role"), Role),
    principals: z.record(Id("principal"), Principal).default({}),
    identities: z.array(IdentityRule).max(256).default([]),
    conflicts: z.array(Conflict).max(1024).default([]),
    keys: z.array(KeyDeclaration).max(1024).default([]),
    grants: z.array(Grant).max(1024).default([]),
    breakGlass: BreakGlass.optional(),
    approvals: z.array(Approval).max(256).default([]),
    custody: Custody.optional(),
  })
  .describe("a custos policy document (docs/POLICY.md)");

export type Policy = z.output<typeof PolicySchema>;
export type PolicyPrincipal = Policy["principals"][string];
export type Grant = Policy["grants"][number];
export type ApprovalRule = Policy["approvals"][number];
export type CustodyRequirements = NonNullable<Policy["custody"]>;
export type KeyDeclaration = Policy["keys"][number];
export type GrantCondition = Grant["conditions"][number];
export type MintRule = NonNullable<Grant["tokens"]>;

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** Milliseconds in a DURATION_RE string. */
export function durationMs(duration: string): number {
  if (!DURATION_RE.test(duration))
    throw new RangeError(`duration '${duration}' must match ${DURATION_RE.source}`);
  const unit = duration.at(-1) as keyof typeof UNIT_SECONDS;
  return Number(duration.slice(0, -1)) * UNIT_SECONDS[unit] * 1000;
}
