/**
 * From verified identity-token claims to a principal, by the policy's
 * `identities` rules — the mapping the JWT and mTLS front ends will call
 * after they have checked the token's signature, issuer and audience (this
 * module checks none of that). First matching rule wins, in document order;
 * no rule, or a claim that is missing or not an identifier, means no
 * principal, and the caller must refuse. A token whose principal id names a
 * principal the policy declares in another organisation maps to nothing:
 * one hospital's identity provider cannot speak for another's staff.
 */
import type { RequestPrincipal } from "./decide.js";
import { ID_RE, type Policy } from "./document.js";

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
    if (typeof id !== "string" || !ID_RE.test(id)) return null;
    const declared = Object.hasOwn(policy.principals, id) ? policy.principals[id] : undefined;
    if (declared && declared.organisation !== rule.organisation) return null;
    return { id, organisation: rule.organisation, roles: rule.roles, rule: rule.id };
  }
  return null;
}
