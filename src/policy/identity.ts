/**
 * From verified identity-token claims to a principal, by the policy's
 * `identities` rules — the mapping the JWT and mTLS front ends will call
 * after they have checked the token's signature, issuer and audience (this
 * module checks none of that). First matching rule wins, in document order;
 * no rule, or a claim that is missing or not an identifier, means no
 * principal, and the caller must refuse. A token whose principal id names a
 * principal the policy declares in another organisation maps to nothing:
 * one hospital's identity provider cannot speak for another's staff. Nor
 * does one naming a declared principal the rule would give a role the
 * policy does not declare for it: separation of duty holds per principal,
 * across every credential (issue 10, finding 4) — a key-admin's SSO token
 * must not make him a clinician too. Names custos writes itself (`custos`,
 * `anonymous`, …) map to nothing.
 */
import { conflictAmong, type RequestPrincipal } from "./decide.js";
import { ID_RE, type Policy } from "./document.js";
import { isReservedPrincipal } from "./reserved.js";

export type Claims = Readonly<Record<string, unknown>>;

export interface MappedPrincipal extends RequestPrincipal {
  /** The identity rule that mapped the claims. */
  rule: string;
}

function claimHas(value: unknown, wanted: string): boolean {
  if (Array.isArray(value)) return value.some((v) => v === wanted);
  return value === wanted;
}

export function principalFromClaims(policy: Policy, claims: Claims): MappedPrincipal | null {
  for (const rule of policy.identities) {
    if (claims.iss !== rule.issuer) continue;
    if (!Object.entries(rule.match).every(([k, v]) => Object.hasOwn(claims, k) && claimHas(claims[k], v)))
      continue;
    const id = claims[rule.principalClaim];
    if (typeof id !== "string" || !ID_RE.test(id) || isReservedPrincipal(id)) return null;
    const declared = Object.hasOwn(policy.principals, id) ? policy.principals[id] : undefined;
    if (declared && declared.organisation !== rule.organisation) return null;
    if (declared && !rule.roles.every((r) => declared.roles.includes(r))) return null;
    return { id, organisation: rule.organisation, roles: rule.roles, rule: rule.id };
  }
  return null;
}

type IdentityRule = Policy["identities"][number];

/**
 * Can the rule map some token to the name? Unless its `match` pins the
 * principal claim to another value, any name its identity provider issues.
 */
export function ruleCanName(rule: IdentityRule, id: string): boolean {
  const pinned = Object.hasOwn(rule.match, rule.principalClaim) ? rule.match[rule.principalClaim] : undefined;
  return pinned === undefined || pinned === id;
}

/** Can two rules name one principal (neither pins the principal claim to a value the other excludes)? */
export function rulesCanShareName(a: IdentityRule, b: IdentityRule): boolean {
  const pin = (r: IdentityRule) =>
    Object.hasOwn(r.match, r.principalClaim) ? r.match[r.principalClaim] : undefined;
  const pa = pin(a);
  const pb = pin(b);
  return pa === undefined || pb === undefined || pa === pb;
}

/**
 * Every role the principal `id` can obtain through any credential: its
 * declared roles (a token, a certificate by CN; identity rules give a declared
 * principal no others), or for an undeclared name the roles of every identity
 * rule that can name it. Separation of duty is checked on this union.
 */
export function rolesAcrossCredentials(policy: Policy, id: string): string[] {
  const declared = Object.hasOwn(policy.principals, id) ? policy.principals[id] : undefined;
  if (declared) return [...declared.roles];
  return [...new Set(policy.identities.filter((r) => ruleCanName(r, id)).flatMap((r) => r.roles))];
}

/** The first conflicting pair the principal can hold through its credentials together, or null. */
export function conflictAcrossCredentials(policy: Policy, id: string): [string, string] | null {
  return conflictAmong(policy, rolesAcrossCredentials(policy, id));
}
