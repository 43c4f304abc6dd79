/**
 * Whom a principal may mint `cst_` tokens for. Under a policy a token *is*
 * its principal's name, so minting is impersonation unless it is bounded:
 * a `token-create` grant carries a `tokens` rule (name patterns, and the
 * roles the minted principal may hold at most), and on top of any rule the
 * minted principal must be declared, of the minter's organisation, free of
 * roles that conflict with the minter's, and hold no power that counts
 * people: never an approver, a custodian, a break-glass reviewer or a
 * minter itself — otherwise one person could approve their own request
 * (as in issue 10, finding 3) or mint a minter. Nor may a minter hold such
 * a power: an approver who mints a requester's token approves "someone
 * else's" request that is their own. The same checks run again
 * each time a minted token is used (`stillMintable`), so a reload that
 * makes its principal an approver, or drops the grant, ends the token. The
 * functions are pure, like `decide`, so the linter reuses them.
 */
import {
  conflictAmong,
  declaredPrincipal,
  grantAllows,
  isEligible,
  type RequestPrincipal,
} from "./decide.js";
import type { Grant, MintRule, Policy } from "./document.js";
import { instantiate, matches } from "./pattern.js";
import { isReservedPrincipal, reservedReason } from "./reserved.js";

export type MintCheck = { ok: true; grant: string } | { ok: false; rule: string; reason: string };

const refuse = (rule: string, reason: string): MintCheck => ({ ok: false, rule, reason });

/** Why a principal's tokens may not be minted by anyone (it counts as a person somewhere), or null. */
export function mintPrivilege(policy: Policy, p: RequestPrincipal): string | null {
  const approval = policy.approvals.find((a) => isEligible(a.eligible, p));
  if (approval) return `approves under ${approval.id}`;
  if (policy.custody && isEligible(policy.custody.holders, p)) return "may hold a share of the root key";
  const review = policy.breakGlass?.review;
  if (review?.roles.some((r) => p.roles.includes(r))) return "reviews break-glass uses";
  const minter = policy.grants.find(
    (g) => g.operations.includes("token-create") && g.roles.some((r) => p.roles.includes(r)),
  );
  if (minter) return `may mint tokens itself (grant ${minter.id})`;
  return null;
}

/** Does the rule cover the principal, for a minter of `organisation`: a pattern matches, every role is allowed? */
export function mintRuleCovers(rule: MintRule, organisation: string, target: RequestPrincipal): boolean {
  return (
    rule.mint.some((p) => matches(instantiate(p, organisation), target.id)) &&
    target.roles.every((r) => rule.roles.includes(r))
  );
}

/** The checks that do not depend on who mints: reserved, declared. */
function targetOf(policy: Policy, name: string): RequestPrincipal | MintCheck {
  if (isReservedPrincipal(name)) return refuse("tokens:reserved-name", reservedReason(name));
  const target = declaredPrincipal(policy, name);
  if (!target) {
    return refuse(
      "tokens:undeclared",
      `'${name}' is not a principal of the policy: tokens are minted only for declared principals`,
    );
  }
  return target;
}

function privileged(policy: Policy, target: RequestPrincipal): MintCheck | null {
  const privilege = mintPrivilege(policy, target);
  if (!privilege) return null;
  return refuse(
    "tokens:privileged",
    `${target.id} ${privilege}: such principals get credentials from their organisation, never a minted token`,
  );
}

/** May `minter` (allowed `token-create` for `purpose`) mint a token for the principal `name`? */
export function mintCheck(
  policy: Policy,
  minter: RequestPrincipal,
  purpose: string,
  name: string,
): MintCheck {
  const target = targetOf(policy, name);
  if ("ok" in target) return target;
  if (target.organisation !== minter.organisation) {
    return refuse(
      "tokens:other-organisation",
      `${name} belongs to ${target.organisation}, not to ${minter.id}'s organisation ${minter.organisation}`,
    );
  }
  const power = privileged(policy, target);
  if (power) return power;
  const conflict = conflictAmong(policy, [...minter.roles, ...target.roles]);
  if (conflict) {
    return refuse(
      `tokens:sod:${conflict[0]}/${conflict[1]}`,
      `a token for ${name} would give ${minter.id} conflicting roles ${conflict[0]} and ${conflict[1]}`,
    );
  }
  const own = policy.approvals.find((a) => isEligible(a.eligible, minter));
  const custodian = policy.custody && isEligible(policy.custody.holders, minter);
  const reviewer = policy.breakGlass?.review?.roles.some((r) => minter.roles.includes(r));
  if (own || custodian || reviewer) {
    const power = own
      ? `approves under ${own.id}`
      : custodian
        ? "may hold a custody share"
        : "reviews break-glass uses";
    return refuse(
      "tokens:minter-privileged",
      `${minter.id} ${power}: whoever counts as a second person must not also mint the first`,
    );
  }
  const grant = policy.grants.find(
    (g: Grant) =>
      g.tokens !== undefined &&
      grantAllows(g, { principal: minter, operation: "token-create", purpose }) &&
      mintRuleCovers(g.tokens, minter.organisation, target),
  );
  if (!grant) {
    return refuse(
      "tokens:not-mintable",
      `no token-create grant of ${minter.id} for ${purpose} has a tokens rule covering ${name} (roles ${target.roles.join(", ")})`,
    );
  }
  return { ok: true, grant: grant.id };
}

/**
 * At each use of a token minted under grant `grantId`: would the grant still
 * let someone of the principal's organisation mint it? (Minting is only ever
 * within one organisation, so the principal's is the minter's.)
 */
export function stillMintable(policy: Policy, grantId: string, name: string): MintCheck {
  const target = targetOf(policy, name);
  if ("ok" in target) return target;
  const power = privileged(policy, target);
  if (power) return power;
  const grant = policy.grants.find((g) => g.id === grantId);
  if (
    !grant?.tokens ||
    !grant.operations.includes("token-create") ||
    (grant.organisations && !grant.organisations.includes(target.organisation)) ||
    !mintRuleCovers(grant.tokens, target.organisation, target)
  ) {
    return refuse(
      "tokens:not-mintable",
      `the token for ${name} was minted under grant ${grantId}, which no longer covers ${name}`,
    );
  }
  return { ok: true, grant: grant.id };
}
