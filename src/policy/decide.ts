/**
 * The decision function the engine will call on every request:
 * `decide(policy, request) → {decision, rule, reason}`. Deny by default — a
 * request is allowed only by a grant (in document order, first match wins)
 * or by break-glass, and then only if the principal holds no conflicting
 * roles and the operation's approval rule, if any, is met by approvals
 * given with it. It is pure: no clock unless `now` is passed, no I/O, no
 * identity resolution (the caller maps tokens to a `RequestPrincipal`), so
 * the same function serves the server, the linter's coalition search and
 * property tests. Every decision names the rule that made it, for the audit.
 */
import { KEY_NAME_RE } from "../crypto/envelope.js";
import { isPurposeOfUse } from "../keys/purpose.js";
import {
  type ApprovalRule,
  durationMs,
  type Grant,
  type GrantCondition,
  isKeyOperation,
  type Policy,
  type PolicyOperation,
  USE_OPERATIONS,
} from "./document.js";
import { instantiate, matches } from "./pattern.js";

export interface RequestPrincipal {
  id: string;
  organisation: string;
  roles: readonly string[];
}

export interface GivenApproval {
  principal: RequestPrincipal;
  /** When the approval was given (ms since the epoch). */
  at: number;
}

export interface PolicyRequest {
  principal: RequestPrincipal;
  operation: PolicyOperation;
  /** The key, for key operations. */
  key?: string;
  purpose: string;
  context?: Readonly<Record<string, string>>;
  approvals?: readonly GivenApproval[];
  /** The time approvals are checked against (ms since the epoch); without it no approval counts. */
  now?: number;
}

export interface PolicyDecision {
  decision: "allow" | "deny" | "needs-approval";
  /** `grant:<id>`, `break-glass`, `approval:<id>`, `sod:<a>/<b>`, `default-deny`, … */
  rule: string;
  reason: string;
  /** Set on break-glass: the use must be reviewed by one of these roles, never the user. */
  review?: { roles: readonly string[]; within: string };
}

/** The principal as the policy declares it, for callers that identify principals by id. */
export function declaredPrincipal(policy: Policy, id: string): RequestPrincipal | null {
  const p = Object.hasOwn(policy.principals, id) ? policy.principals[id] : undefined;
  return p ? { id, organisation: p.organisation, roles: p.roles } : null;
}

/** The first declared conflict among the roles, or null. */
export function conflictAmong(policy: Policy, roles: readonly string[]): [string, string] | null {
  const held = new Set(roles);
  for (const c of policy.conflicts) if (held.has(c.roles[0]) && held.has(c.roles[1])) return c.roles;
  return null;
}

const deny = (rule: string, reason: string): PolicyDecision => ({ decision: "deny", rule, reason });

export function decide(policy: Policy, request: PolicyRequest): PolicyDecision {
  const { principal, operation, key, purpose } = request;
  if (!isPurposeOfUse(purpose))
    return deny("purpose:unknown", `'${purpose}' is not an HL7 PurposeOfUse code`);
  if (isKeyOperation(operation) && (key === undefined || !KEY_NAME_RE.test(key))) {
    return deny("key:invalid", `${operation} needs a valid key name`);
  }
  const conflict = conflictAmong(policy, principal.roles);
  if (conflict) {
    return deny(
      `sod:${conflict[0]}/${conflict[1]}`,
      `${principal.id} holds conflicting roles ${conflict[0]} and ${conflict[1]}`,
    );
  }

  let allowed: Omit<PolicyDecision, "decision"> | null = null;
  const grant = policy.grants.find((g) => grantAllows(g, request));
  if (grant) {
    allowed = { rule: `grant:${grant.id}`, reason: `grant ${grant.id} allows ${operation} for ${purpose}` };
  } else if (breakGlassAllows(policy, request)) {
    const review = policy.breakGlass?.review;
    if (!review) return deny("break-glass:no-review", "break-glass is declared without review; refused");
    allowed = {
      rule: "break-glass",
      reason: `break-glass ${operation} on ${key} for ETREAT by ${principal.id}; review by ${review.roles.join(" or ")} within ${review.within}`,
      review: { roles: review.roles, within: review.within },
    };
  }
  if (!allowed) {
    return deny(
      "default-deny",
      `no grant lets ${principal.id} (${principal.roles.join(", ")}) ${operation}${key ? ` ${key}` : ""} for ${purpose}`,
    );
  }

  const approval = approvalRuleFor(policy, operation, key, principal.organisation);
  if (!approval) return { decision: "allow", ...allowed };
  const counted = countApprovals(policy, approval, request);
  if (counted >= approval.required) {
    return {
      decision: "allow",
      ...allowed,
      rule: `${allowed.rule}+approval:${approval.id}`,
      reason: `${allowed.reason}; approved by ${counted} of ${approval.required} required`,
    };
  }
  return {
    decision: "needs-approval",
    rule: `approval:${approval.id}`,
    reason: `${operation} needs ${approval.required} approval(s) under ${approval.id}; ${counted} valid given`,
  };
}

export function grantAllows(grant: Grant, request: PolicyRequest): boolean {
  const { principal, operation, key, purpose } = request;
  if (!grant.roles.some((r) => principal.roles.includes(r))) return false;
  if (grant.organisations && !grant.organisations.includes(principal.organisation)) return false;
  if (!grant.operations.includes(operation)) return false;
  if (!(grant.purposes as readonly string[]).includes(purpose)) return false;
  if (isKeyOperation(operation)) {
    if (key === undefined || !grant.keys.some((p) => matches(instantiate(p, principal.organisation), key))) {
      return false;
    }
  }
  return grant.conditions.every((c) => conditionHolds(c, principal, request.context ?? {}));
}

/** The value a condition compares with: a literal or a `$caller.*` reference. */
export function conditionValue(value: string, principal: RequestPrincipal): string {
  if (value === "$caller.organisation") return principal.organisation;
  if (value === "$caller.id") return principal.id;
  return value;
}

function conditionHolds(
  c: GrantCondition,
  principal: RequestPrincipal,
  context: Readonly<Record<string, string>>,
): boolean {
  const actual = Object.hasOwn(context, c.context) ? context[c.context] : undefined;
  if (actual === undefined) return false;
  if ("equals" in c) return actual === conditionValue(c.equals, principal);
  return c.oneOf.some((v) => conditionValue(v, principal) === actual);
}

function breakGlassAllows(policy: Policy, request: PolicyRequest): boolean {
  const bg = policy.breakGlass;
  const { principal, operation, key, purpose } = request;
  if (!bg || purpose !== "ETREAT" || key === undefined) return false;
  if (!(USE_OPERATIONS as readonly string[]).includes(operation)) return false;
  if (!(bg.operations as readonly string[]).includes(operation)) return false;
  if (!bg.roles.some((r) => principal.roles.includes(r))) return false;
  return bg.keys.some((p) => matches(instantiate(p, principal.organisation), key));
}

/** The approval rule governing the operation: the first in document order whose operations and keys cover it. */
export function approvalRuleFor(
  policy: Policy,
  operation: PolicyOperation,
  key: string | undefined,
  organisation: string,
): ApprovalRule | undefined {
  return policy.approvals.find(
    (a) =>
      a.operations.includes(operation) &&
      (!isKeyOperation(operation) ||
        (key !== undefined && a.keys.some((p) => matches(instantiate(p, organisation), key)))),
  );
}

export function isEligible(
  rule: { roles: readonly string[]; principals: readonly string[] },
  p: RequestPrincipal,
) {
  return rule.principals.includes(p.id) || rule.roles.some((r) => p.roles.includes(r));
}

/**
 * How many of the given approvals count: from eligible principals without
 * conflicting roles, never the requester, one per principal, not expired,
 * from outside the requester's organisation where required, and — where
 * distinct organisations are required — at most one per organisation.
 */
export function countApprovals(policy: Policy, rule: ApprovalRule, request: PolicyRequest): number {
  if (request.now === undefined) return 0;
  const ttl = durationMs(rule.expiresAfter);
  const seen = new Set<string>();
  const orgs = new Set<string>();
  for (const a of request.approvals ?? []) {
    const p = a.principal;
    if (p.id === request.principal.id || seen.has(p.id)) continue;
    if (!isEligible(rule.eligible, p) || conflictAmong(policy, p.roles)) continue;
    if (a.at > request.now || request.now - a.at > ttl) continue;
    if (rule.outsideRequesterOrganisation && p.organisation === request.principal.organisation) continue;
    if (rule.distinctOrganisations && orgs.has(p.organisation)) continue;
    seen.add(p.id);
    orgs.add(p.organisation);
  }
  return seen.size;
}
