/**
 * The `Authorizer` seam the HTTP gate calls, the API's operation names, and
 * the first-cut implementation behind it: a fixed role table, used when the
 * server runs without `--policy` (the policy engine, src/policy/engine.ts,
 * implements the same seam). Deny by default: an operation not listed for
 * one of the caller's roles is refused, and every decision names the rule
 * that made it so the audit can say why. `root` (the init token) may do
 * everything, as Vault's root token can; it is meant for bootstrap only.
 */

export const OPERATIONS = [
  "sys.init",
  "sys.seal",
  "sys.unseal.reset",
  "sys.tpm-seal.read",
  "sys.tpm-seal.write",
  "sys.rekey",
  "sys.rotate-root",
  "keys.create",
  "keys.list",
  "keys.read",
  "keys.rotate",
  "keys.update",
  "keys.disable",
  "keys.destroy",
  "keys.cancel-destruction",
  "keys.datakey",
  "keys.encrypt",
  "keys.decrypt",
  "keys.rewrap",
  "tokens.create",
  "tokens.read",
  "tokens.revoke",
  "audit.read",
  "sys.policy.reload",
  "reviews.read",
  "reviews.close",
  "approvals.request",
  "approvals.read",
  "approvals.vote",
  "approvals.execute",
] as const;
export type Operation = (typeof OPERATIONS)[number];

export const ROLES = ["root", "admin", "custodian", "service", "auditor"] as const;
export type Role = (typeof ROLES)[number];
/** Roles a token may be created with; `root` exists only through init. */
export const GRANTABLE_ROLES = ["admin", "custodian", "service", "auditor"] as const;

export interface Principal {
  id: string;
  roles: readonly string[];
  /** The principal's organisation, when a policy says it. */
  organisation?: string;
  /** How the caller proved who it is: `token`, `jwt:<rule>`, `mtls:<rule>`. */
  via?: string;
  /** For a token minted under a policy: the grant it was minted under (re-checked at each use). */
  mintedUnder?: string;
}

/** A refusal with the rule that made it, for the audit. */
export interface Refusal {
  rule: string;
  reason: string;
}

export interface AuthzRequest {
  principal: Principal;
  operation: Operation;
  key?: string;
  purpose?: string;
  /** The request's encryption context, for conditions such as `context.institution`. */
  context?: Readonly<Record<string, string>>;
}

export interface Decision {
  allow: boolean;
  /** The rule that decided, e.g. `role:service` or `default-deny`. */
  rule: string;
  reason: string;
  /** Refused only for want of approvals (four eyes): the caller must request them. */
  needsApproval?: boolean;
  /** Allowed by break-glass: the use must be reviewed by one of these roles, never the user. */
  review?: { roles: readonly string[]; within: string };
}

export interface Authorizer {
  /** Whether decisions depend on the purpose of use and context (then the gate must find them). */
  readonly usesPurpose: boolean;
  /** The principal decisions are about, for a token holder; null when unknown to this authoriser. */
  resolve(principal: Principal): Principal | null;
  /** Verified JWT or client-certificate claims as a principal; absent where nothing maps claims. */
  fromClaims?(claims: Readonly<Record<string, unknown>>, via: "jwt" | "mtls"): Principal | null;
  /**
   * After any credential resolved to a principal: a refusal when the
   * principal may not act at all (conflicting roles across its credentials,
   * a minted token its grant no longer covers); null to go on.
   */
  admit?(principal: Principal): Refusal | null;
  /**
   * May `minter` mint a token for the principal `name` (the gate already
   * allowed it `tokens.create`)? Without this method only reserved names
   * are refused. `grant` is recorded with the token.
   */
  mayMint?(minter: Principal, name: string, purpose: string | undefined): Refusal | { grant: string };
  decide(request: AuthzRequest): Decision;
}

const ROLE_TABLE: Record<Exclude<Role, "root">, ReadonlySet<Operation>> = {
  // Enabling the TPM seal (sys.tpm-seal.write) trades custodians for a
  // machine's measured state: root only, until the policy engine decides it.
  admin: new Set<Operation>([
    "sys.seal",
    "sys.unseal.reset",
    "sys.tpm-seal.read",
    "keys.create",
    "keys.list",
    "keys.read",
    "keys.rotate",
    "keys.update",
    "keys.disable",
    "keys.destroy",
    "keys.cancel-destruction",
  ]),
  custodian: new Set<Operation>(["sys.seal", "sys.unseal.reset", "sys.tpm-seal.read"]),
  service: new Set<Operation>([
    "keys.list",
    "keys.read",
    "keys.datakey",
    "keys.encrypt",
    "keys.decrypt",
    "keys.rewrap",
  ]),
  auditor: new Set<Operation>(["keys.list", "keys.read", "audit.read", "reviews.read", "reviews.close"]),
};

export class RoleAuthorizer implements Authorizer {
  readonly usesPurpose = false;

  resolve(principal: Principal): Principal {
    return principal;
  }

  /** A token minted under a policy grant is a policy principal's name: without the policy it is nobody. */
  admit(principal: Principal): Refusal | null {
    if (principal.mintedUnder === undefined) return null;
    return {
      rule: "identity:policy-token",
      reason: `the token of ${principal.id} was minted under policy grant ${principal.mintedUnder}; it counts only while that policy runs`,
    };
  }

  decide({ principal, operation }: AuthzRequest): Decision {
    for (const role of principal.roles) {
      if (role === "root") return { allow: true, rule: "role:root", reason: "root token" };
      const ops = ROLE_TABLE[role as Exclude<Role, "root">];
      if (ops?.has(operation)) {
        return { allow: true, rule: `role:${role}`, reason: `role ${role} may ${operation}` };
      }
    }
    return {
      allow: false,
      rule: "default-deny",
      reason: `none of the roles [${principal.roles.join(", ")}] may ${operation}`,
    };
  }
}
