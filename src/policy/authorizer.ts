/**
 * First-cut authorisation: a fixed role table behind the `Authorizer` seam
 * that the policy engine will replace. Deny by default: an operation not
 * listed for one of the caller's roles is refused, and every decision names
 * the rule that made it so the audit can say why. `root` (the init token) may
 * do everything, as Vault's root token can; it is meant for bootstrap only.
 */

export const OPERATIONS = [
  "sys.seal",
  "sys.unseal.reset",
  "sys.tpm-seal.read",
  "sys.tpm-seal.write",
  "keys.create",
  "keys.list",
  "keys.read",
  "keys.rotate",
  "keys.update",
  "keys.destroy",
  "keys.datakey",
  "keys.encrypt",
  "keys.decrypt",
  "keys.rewrap",
  "tokens.create",
  "audit.read",
] as const;
export type Operation = (typeof OPERATIONS)[number];

export const ROLES = ["root", "admin", "custodian", "service", "auditor"] as const;
export type Role = (typeof ROLES)[number];
/** Roles a token may be created with; `root` exists only through init. */
export const GRANTABLE_ROLES = ["admin", "custodian", "service", "auditor"] as const;

export interface Principal {
  id: string;
  roles: readonly string[];
}

export interface AuthzRequest {
  principal: Principal;
  operation: Operation;
  key?: string;
  purpose?: string;
}

export interface Decision {
  allow: boolean;
  /** The rule that decided, e.g. `role:service` or `default-deny`. */
  rule: string;
  reason: string;
}

export interface Authorizer {
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
    "keys.destroy",
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
  auditor: new Set<Operation>(["keys.list", "keys.read", "audit.read"]),
};

export class RoleAuthorizer implements Authorizer {
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
