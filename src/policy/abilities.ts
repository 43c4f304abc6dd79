/**
 * What a class of principals can do under a policy, stated over key
 * *patterns* rather than single requests, for the linter and the coalition
 * search: may it perform an operation on some key a declaration names, may
 * it approve, may it hold a share. These mirror `decide` rule for rule, but
 * they answer "is there a request that would be allowed", so they err on the
 * side of ability (a condition on a context entry the key declaration does
 * not fix is assumed satisfiable): a coalition the linter reports is at most
 * as large as the real one, never larger.
 */
import type { Goal, MemberClass } from "./coalition.js";
import { conflictAmong } from "./decide.js";
import {
  type ApprovalRule,
  type Grant,
  isKeyOperation,
  type KeyDeclaration,
  type Policy,
  type PolicyOperation,
} from "./document.js";
import { instantiate, matches, overlaps } from "./pattern.js";

/** Can the grant's context conditions hold for a member of the class on a key of the target? */
export function conditionsSatisfiable(
  grant: Grant,
  c: Pick<MemberClass, "organisation">,
  target: KeyDeclaration,
): boolean {
  const fixed = target.context ?? {};
  return grant.conditions.every((cond) => {
    const value = Object.hasOwn(fixed, cond.context) ? fixed[cond.context] : undefined;
    if (value === undefined) return true;
    const resolve = (v: string) =>
      v === "$caller.organisation" ? c.organisation : v === "$caller.id" ? null : v;
    const wanted = "equals" in cond ? [cond.equals] : cond.oneOf;
    // `$caller.id` is some member's id: assume one fits, as the search is over classes.
    return wanted.some((w) => resolve(w) === null || resolve(w) === value);
  });
}

/**
 * The grant (or `break-glass`) letting the class perform `op` on some key of
 * the target, or null; for operations on no key the target is ignored.
 */
export function actsOn(
  policy: Policy,
  c: MemberClass,
  op: PolicyOperation,
  target: KeyDeclaration,
): string | null {
  if (conflictAmong(policy, c.roles)) return null;
  const grant = policy.grants.find(
    (g) =>
      g.roles.some((r) => c.roles.includes(r)) &&
      (!g.organisations || g.organisations.includes(c.organisation)) &&
      g.operations.includes(op) &&
      g.purposes.length > 0 &&
      (!isKeyOperation(op) ||
        (g.keys.some((p) => overlaps(instantiate(p, c.organisation), target.pattern)) &&
          conditionsSatisfiable(g, c, target))),
  );
  if (grant) return `grant ${grant.id}`;
  const bg = policy.breakGlass;
  if (
    bg?.review &&
    (bg.operations as readonly string[]).includes(op) &&
    bg.roles.some((r) => c.roles.includes(r)) &&
    bg.keys.some((p) => overlaps(instantiate(p, c.organisation), target.pattern))
  ) {
    return "break-glass";
  }
  return null;
}

/**
 * The approval rules that may govern `op` on the target's keys for a
 * requester of `organisation`, in document order; `null` in the list means
 * some keys of the target fall under no rule. A rule covering the whole
 * target ends the list, since no later rule can be reached.
 */
export function possibleApprovalRules(
  policy: Policy,
  op: PolicyOperation,
  target: KeyDeclaration,
  organisation: string,
): (ApprovalRule | null)[] {
  const out: (ApprovalRule | null)[] = [];
  for (const rule of policy.approvals) {
    if (!rule.operations.includes(op)) continue;
    const patterns = rule.keys.map((p) => instantiate(p, organisation));
    if (patterns.some((p) => matches(p, target.pattern))) return [...out, rule];
    if (patterns.some((p) => overlaps(p, target.pattern))) out.push(rule);
  }
  return [...out, null];
}

export function eligibleFor(
  rule: { roles: readonly string[]; principals: readonly string[] },
  c: MemberClass,
) {
  return (
    c.roles.some((r) => rule.roles.includes(r)) ||
    (c.names.length === 1 && rule.principals.includes(c.names[0]!))
  );
}

/**
 * Can the coalition, less the requester (one member of class `requester`;
 * -1 for none), give the approvals `rule` needs?
 */
export function approvable(
  policy: Policy,
  classes: readonly MemberClass[],
  counts: readonly number[],
  requester: number,
  rule: ApprovalRule,
  approverFilter: (c: MemberClass) => boolean = () => true,
): boolean {
  const orgs = new Set<string>();
  let units = 0;
  classes.forEach((c, j) => {
    const n = counts[j]! - (j === requester ? 1 : 0);
    if (n <= 0 || !approverFilter(c) || !eligibleFor(rule.eligible, c) || conflictAmong(policy, c.roles))
      return;
    if (rule.outsideRequesterOrganisation && c.organisation === classes[requester]?.organisation) return;
    units += n;
    orgs.add(c.organisation);
  });
  return (rule.distinctOrganisations ? orgs.size : units) >= rule.required;
}

/** The goal "the coalition can perform `op` on some key of the target", approvals included. */
export function useGoal(
  policy: Policy,
  classes: readonly MemberClass[],
  op: PolicyOperation,
  target: KeyDeclaration,
  approverFilter?: (c: MemberClass) => boolean,
): Goal {
  const rules = classes.map((c) =>
    actsOn(policy, c, op, target) ? possibleApprovalRules(policy, op, target, c.organisation) : [],
  );
  const goal: Goal = (counts) =>
    classes.some(
      (_, i) =>
        counts[i]! > 0 &&
        rules[i]!.some((r) => r === null || approvable(policy, classes, counts, i, r, approverFilter)),
    );
  // Only requesters and those eligible to approve for one of them can contribute.
  const approvers = rules.flat().filter((r): r is ApprovalRule => r !== null);
  goal.relevant = classes.map(
    (c, i) => rules[i]!.length > 0 || approvers.some((r) => eligibleFor(r.eligible, c)),
  );
  return goal;
}

/** May members of the class hold a share under the custody requirements? */
export function mayHoldShare(policy: Policy, c: MemberClass): boolean {
  const custody = policy.custody;
  if (!custody || !eligibleFor(custody.holders, c)) return false;
  return !(custody.forbidConflictingRoles && conflictAmong(policy, c.roles));
}

/** The goal "the coalition holds a custody quorum": threshold shares, per-organisation caps, enough organisations. */
export function custodyGoal(policy: Policy, classes: readonly MemberClass[]): Goal {
  const custody = policy.custody;
  const holders = classes.map((c) => mayHoldShare(policy, c));
  const goal: Goal = (counts) => {
    if (!custody) return false;
    const perOrg = new Map<string, number>();
    classes.forEach((c, i) => {
      if (holders[i] && counts[i]! > 0)
        perOrg.set(c.organisation, (perOrg.get(c.organisation) ?? 0) + counts[i]!);
    });
    let shares = 0;
    for (const n of perOrg.values()) shares += Math.min(n, custody.maxPerOrganisation ?? n);
    return shares >= custody.threshold && perOrg.size >= custody.minOrganisations;
  };
  goal.relevant = holders;
  return goal;
}
