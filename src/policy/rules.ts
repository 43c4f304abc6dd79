/**
 * The linter's rules: stable ids (never renumbered or reused, so CI
 * suppressions and SARIF baselines keep working), a short name, a default
 * level and the help text SARIF shows beside an annotation. Data only; the
 * checks live in lint.ts and lint-quorums.ts, and each rule has a fixture in
 * policies/lint-fixtures/ that triggers it and nothing else.
 */

export type Level = "error" | "warning" | "note";

export interface RuleInfo {
  id: string;
  name: string;
  level: Level;
  summary: string;
  help: string;
}

export const RULES = [
  {
    id: "CUS001",
    name: "schema",
    level: "error",
    summary: "The document does not match the policy schema.",
    help: "Fix the field at the reported line; policies/schema/policy.schema.json lists every field and docs/POLICY.md explains them.",
  },
  {
    id: "CUS002",
    name: "names/unknown-or-duplicate",
    level: "error",
    summary:
      "A role, organisation or principal is used but not declared, an id is declared twice, or a principal takes a name custos reserves.",
    help: "Declare the name under organisations, roles or principals, or correct its spelling; give every grant, approval rule and identity rule its own id; never name a principal custos, anonymous, root, dev, operator or system, nor with ':' or spaces.",
  },
  {
    id: "CUS003",
    name: "sod/conflicting-roles",
    level: "error",
    summary: "A principal or identity rule holds two roles the policy declares conflicting.",
    help: "Static separation of duty: give the roles to different people, or remove one of them.",
  },
  {
    id: "CUS004",
    name: "sod/administer-and-use",
    level: "error",
    summary: "A role (or one principal's roles together) can both administer and use the same key.",
    help: "Split key administration (create, rotate, disable, destroy) and key use (datakey, encrypt, decrypt, rewrap) between roles held by different principals.",
  },
  {
    id: "CUS005",
    name: "grant/wider-than-organisation",
    level: "error",
    summary: "A grant lets principals of one organisation reach keys declared for another.",
    help: "Narrow the key pattern (ehr-{org}-*), add the condition `context: institution, equals: $caller.organisation`, restrict `organisations`, or set `acrossOrganisations: true` if the reach is intended.",
  },
  {
    id: "CUS006",
    name: "break-glass/no-review",
    level: "error",
    summary: "Break-glass is allowed without a review by someone other than the user.",
    help: "Give breakGlass a `review` with roles held by principals other than the break-glass users, and a deadline (`within`).",
  },
  {
    id: "CUS007",
    name: "approvals/single-person",
    level: "error",
    summary: "The approvals an operation needs can be given without a second person.",
    help: "Make people, not services, eligible approvers, so that every approved operation involves a second person.",
  },
  {
    id: "CUS008",
    name: "approvals/single-organisation",
    level: "warning",
    summary: "One organisation can both request an operation and give all the approvals it needs.",
    help: "Set `distinctOrganisations: true` (with required ≥ 2) or `outsideRequesterOrganisation: true` if another organisation must agree.",
  },
  {
    id: "CUS009",
    name: "threshold/unsatisfiable",
    level: "error",
    summary:
      "A threshold can never be met: more approvals, shares or organisations are required than eligible principals exist.",
    help: "Lower the threshold or make more principals eligible; an unsatisfiable rule blocks the operation for everyone.",
  },
  {
    id: "CUS010",
    name: "custody/single-organisation",
    level: "error",
    summary: "The custodians of one organisation can reconstruct the root key alone.",
    help: "Set custody.minOrganisations to 2 or more, or cap custody.maxPerOrganisation below the threshold.",
  },
  {
    id: "CUS011",
    name: "grant/allows-nothing",
    level: "warning",
    summary:
      "A grant can never allow anything: no purposes of use, key operations without key patterns, or token-create without a tokens rule.",
    help: "An empty purposes list allows nothing; list the purposes, give key patterns or a tokens rule, or delete the grant.",
  },
  {
    id: "CUS012",
    name: "tokens/mint-beyond-minter",
    level: "error",
    summary:
      "A token-create grant lets its holder mint credentials for a principal of another organisation, or one whose roles conflict with the minter's.",
    help: "A minted token is its principal: narrow tokens.mint to the minter's own organisation ({org}-…) and to principals whose roles never conflict with the minter's.",
  },
  {
    id: "CUS013",
    name: "sod/roles-across-credentials",
    level: "error",
    summary:
      "One principal can hold conflicting roles through two credentials (two identity rules that can name it).",
    help: "Separation of duty holds per principal, not per credential: pin the principal claim in one rule's match, or give the rules roles that do not conflict.",
  },
  {
    id: "CUS100",
    name: "coalition/smallest",
    level: "note",
    summary: "The smallest coalition of principals able to reconstruct the root key or use a key.",
    help: "Informational: check that the people named are the ones you expect to trust with the key.",
  },
] as const satisfies readonly RuleInfo[];

export type RuleId = (typeof RULES)[number]["id"];

const BY_ID = new Map<string, RuleInfo>(RULES.map((r) => [r.id, r]));

export function ruleInfo(id: RuleId): RuleInfo {
  return BY_ID.get(id)!;
}
