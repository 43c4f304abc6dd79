/**
 * The policy engine the server runs with `--policy FILE`: the loaded
 * document behind the `Authorizer` seam the HTTP gate calls, so every
 * request is decided by `decide()` before anything touches a key. It maps
 * the API's operation names (`keys.decrypt`, `sys.seal`, …) onto the
 * policy's closed operation list, resolves callers to the policy's
 * principals (a `cst_` token by its principal's name, JWT claims and client
 * certificates by the identity rules), and turns "needs approval" and
 * break-glass into what the gate acts on. A document is accepted only if it
 * validates and lints without errors — at start and on reload alike — and
 * a refused reload leaves the running policy in place: the swap is one
 * assignment, so a request is decided wholly by the old or the new policy.
 * Whom a caller may mint tokens for, and whether a credential's principal
 * may act at all (separation of duty over every credential it can hold, a
 * minted token still covered by its grant), are decided here too, from
 * src/policy/minting.ts and src/policy/identity.ts.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { REVIEW_PURPOSES } from "../keys/purpose.js";
import type { Authorizer, AuthzRequest, Decision, Operation, Principal, Refusal } from "./authorizer.js";
import { decide, declaredPrincipal } from "./decide.js";
import type { Policy, PolicyOperation } from "./document.js";
import { type Claims, conflictAcrossCredentials, principalFromClaims } from "./identity.js";
import { lintSource } from "./lint.js";
import { mintCheck, stillMintable } from "./minting.js";
import { isReservedPrincipal, reservedReason } from "./reserved.js";
import { ruleInfo } from "./rules.js";
import { PolicyInputError, parsePolicy } from "./source.js";

/** The policy operation each API operation is decided as; `null`: decided by the review rules below. */
export const POLICY_OPERATION: Readonly<Record<Operation, PolicyOperation | null>> = {
  "sys.init": "ceremony-init",
  "sys.seal": "ceremony-seal",
  "sys.unseal.reset": "ceremony-unseal",
  "sys.tpm-seal.read": "tpm-seal-read",
  "sys.tpm-seal.write": "tpm-seal-write",
  "sys.rekey": "ceremony-rekey",
  "sys.rotate-root": "ceremony-rotate-root",
  "sys.policy.reload": "policy-change",
  "keys.create": "create",
  "keys.list": "list",
  "keys.read": "read",
  "keys.rotate": "rotate",
  "keys.update": "update",
  "keys.disable": "disable",
  "keys.destroy": "destroy",
  "keys.cancel-destruction": "update",
  "keys.datakey": "datakey",
  "keys.encrypt": "encrypt",
  "keys.decrypt": "decrypt",
  "keys.rewrap": "rewrap",
  "tokens.create": "token-create",
  "tokens.read": "token-read",
  "tokens.revoke": "token-revoke",
  "audit.read": "read-audit",
  "reviews.read": "read-audit",
  "reviews.close": null,
  // Decided by the approvals routes themselves against the policy's approval rules (src/approvals).
  "approvals.request": null,
  "approvals.read": null,
  "approvals.vote": null,
  "approvals.execute": null,
};

/** A document refused at start or on reload: schema errors, lint errors, or not YAML at all. */
export class PolicyLoadError extends Error {
  override name = "PolicyLoadError";
}

export interface LoadedPolicy {
  policy: Policy;
  file: string;
  /** SHA-256 of the file's bytes (hex), for the audit: which document decided. */
  digest: string;
}

/** Reads, validates and lints a policy file; any error-level finding refuses it, naming each. */
export function loadPolicyFile(file: string): LoadedPolicy {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new PolicyLoadError(`cannot read policy ${file}: ${(err as Error).message}`);
  }
  let source: ReturnType<typeof parsePolicy>;
  try {
    source = parsePolicy(text, file);
  } catch (err) {
    if (!(err instanceof PolicyInputError)) throw err;
    const at = err.position ? `:${err.position.line}:${err.position.column}` : "";
    throw new PolicyLoadError(`policy ${file}${at} refused: ${err.message}`);
  }
  const errors = lintSource(source).filter((f) => f.level === "error");
  if (errors.length > 0 || source.policy === null) {
    const lines = errors
      .slice(0, 20)
      .map(
        (f) =>
          `  ${f.file}:${f.position.line}:${f.position.column}: ${f.ruleId} ${ruleInfo(f.ruleId).name}: ${f.message}`,
      );
    const more = errors.length > 20 ? [`  … and ${errors.length - 20} more`] : [];
    throw new PolicyLoadError(
      [
        `policy ${file} refused: ${errors.length} lint error(s) (run 'custos policy lint ${file}'):`,
        ...lines,
        ...more,
      ].join("\n"),
    );
  }
  return { policy: source.policy, file, digest: createHash("sha256").update(text).digest("hex") };
}

const deny = (rule: string, reason: string): Decision => ({ allow: false, rule, reason });

export class PolicyEngine implements Authorizer {
  readonly usesPurpose = true;
  #loaded: LoadedPolicy;

  constructor(loaded: LoadedPolicy) {
    this.#loaded = loaded;
  }

  static fromFile(file: string): PolicyEngine {
    return new PolicyEngine(loadPolicyFile(file));
  }

  get policy(): Policy {
    return this.#loaded.policy;
  }

  get file(): string {
    return this.#loaded.file;
  }

  get digest(): string {
    return this.#loaded.digest;
  }

  /**
   * Reads the file again and switches to it if it is acceptable (and, with
   * `expectedDigest`, is the approved document); throws PolicyLoadError (and
   * keeps the running policy) otherwise.
   */
  reload(file: string = this.#loaded.file, expectedDigest?: string): LoadedPolicy {
    const next = loadPolicyFile(file);
    if (expectedDigest !== undefined && next.digest !== expectedDigest) {
      throw new PolicyLoadError(
        `policy ${file} is sha256:${next.digest}, not the approved sha256:${expectedDigest}; request approval for this document`,
      );
    }
    this.#loaded = next;
    return next;
  }

  /** A `cst_` token's holder is the declared principal of the same name; its roles come from the policy. */
  resolve(principal: Principal): Principal | null {
    const declared = declaredPrincipal(this.#loaded.policy, principal.id);
    return declared
      ? {
          ...declared,
          via: principal.via ?? "token",
          ...(principal.mintedUnder !== undefined && { mintedUnder: principal.mintedUnder }),
        }
      : null;
  }

  /** Separation of duty per principal, whatever the credential; a minted token only while its grant covers it. */
  admit(principal: Principal): Refusal | null {
    const policy = this.#loaded.policy;
    if (isReservedPrincipal(principal.id))
      return { rule: "identity:reserved", reason: reservedReason(principal.id) };
    const conflict = conflictAcrossCredentials(policy, principal.id);
    if (conflict) {
      return {
        rule: `sod:${conflict[0]}/${conflict[1]}`,
        reason: `${principal.id} can hold conflicting roles ${conflict[0]} and ${conflict[1]} through its credentials together`,
      };
    }
    if (principal.mintedUnder !== undefined) {
      const still = stillMintable(policy, principal.mintedUnder, principal.id);
      if (!still.ok) return { rule: still.rule, reason: still.reason };
    }
    return null;
  }

  mayMint(minter: Principal, name: string, purpose: string | undefined): Refusal | { grant: string } {
    if (minter.organisation === undefined || purpose === undefined) {
      return { rule: "tokens:not-mintable", reason: `${minter.id} is not a principal of the policy` };
    }
    const check = mintCheck(
      this.#loaded.policy,
      { id: minter.id, organisation: minter.organisation, roles: minter.roles },
      purpose,
      name,
    );
    return check.ok ? { grant: check.grant } : { rule: check.rule, reason: check.reason };
  }

  /** Verified JWT claims or certificate claims, mapped by the policy's identity rules. */
  fromClaims(claims: Claims, via: "jwt" | "mtls"): Principal | null {
    const mapped = principalFromClaims(this.#loaded.policy, claims);
    if (mapped) {
      return {
        id: mapped.id,
        organisation: mapped.organisation,
        roles: mapped.roles,
        via: `${via}:${mapped.rule}`,
      };
    }
    // A certificate without a rule for it names a declared principal by its CN — but only
    // when the policy has no x509 rules at all, so rules, once written, are the only way in.
    if (via !== "mtls" || typeof claims.cn !== "string") return null;
    if (this.#loaded.policy.identities.some((r) => r.issuer === claims.iss)) return null;
    const declared = declaredPrincipal(this.#loaded.policy, claims.cn);
    return declared ? { ...declared, via: "mtls:cn" } : null;
  }

  decide(request: AuthzRequest): Decision {
    const { principal, operation, key, purpose, context } = request;
    const policy = this.#loaded.policy;
    if (principal.organisation === undefined) {
      return deny("identity:undeclared", `${principal.id} is not a principal of the policy`);
    }
    if (operation.startsWith("approvals.")) {
      return {
        allow: true,
        rule: "approvals:route",
        reason: "the approvals route decides by the policy's approval rules",
      };
    }
    if (purpose === undefined) {
      return deny(
        "purpose:missing",
        "name the purpose of use (the request's 'purpose', or the X-Purpose-Of-Use header)",
      );
    }
    const op = POLICY_OPERATION[operation];
    if (op === null) return this.#decideReview(principal, purpose);
    const d = decide(policy, {
      principal: { id: principal.id, organisation: principal.organisation, roles: principal.roles },
      operation: op,
      ...(key !== undefined && { key }),
      purpose,
      ...(context !== undefined && { context }),
    });
    if (d.decision === "allow")
      return { allow: true, rule: d.rule, reason: d.reason, ...(d.review && { review: d.review }) };
    if (d.decision === "needs-approval")
      return { allow: false, rule: d.rule, reason: d.reason, needsApproval: true };
    return deny(d.rule, d.reason);
  }

  /** Closing a break-glass review: a holder of a review role, for a purpose the review is about. */
  #decideReview(principal: Principal, purpose: string): Decision {
    if (!(REVIEW_PURPOSES as readonly string[]).includes(purpose)) {
      return deny(
        "purpose:review",
        `break-glass reviews are closed for ${REVIEW_PURPOSES.join(", ")}, not '${purpose.slice(0, 32)}'`,
      );
    }
    const roles = this.#loaded.policy.breakGlass?.review?.roles ?? [];
    const role = roles.find((r) => principal.roles.includes(r));
    if (!role) {
      return deny(
        "review:not-eligible",
        `break-glass reviews are closed by ${roles.length ? roles.join(" or ") : "nobody (the policy names no reviewers)"}`,
      );
    }
    return {
      allow: true,
      rule: `review:${role}`,
      reason: `${principal.id} reviews as ${role} for ${purpose}`,
    };
  }
}
