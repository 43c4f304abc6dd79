/**
 * `custos policy lint`'s checks on one document: schema, names, static
 * separation of duty, grant reach and break-glass review here; approvals,
 * custody quorums and coalitions in lint-quorums.ts; minting and roles
 * across credentials in lint-tokens.ts. A finding carries its
 * rule, level, message and the document path it is about; the path becomes a
 * line and column through the source's node tree, so findings are located
 * exactly without the checks knowing about YAML. A document that breaks the
 * schema gets only its schema findings: the other checks read a validated
 * document and would otherwise report noise.
 */
import { conditionsSatisfiable } from "./abilities.js";
import { memberClasses } from "./coalition.js";
import { conflictAmong } from "./decide.js";
import { ADMIN_OPERATIONS, isKeyOperation, type Policy, USE_OPERATIONS } from "./document.js";
import { lintQuorums } from "./lint-quorums.js";
import { checkCredentialRoles, checkMinting } from "./lint-tokens.js";
import { instantiate, overlaps } from "./pattern.js";
import { isReservedPrincipal, reservedReason } from "./reserved.js";
import { type Level, type RuleId, ruleInfo } from "./rules.js";
import { type PathSegment, type PolicySource, type Position, parsePolicy } from "./source.js";

export interface Finding {
  ruleId: RuleId;
  level: Level;
  message: string;
  path: PathSegment[];
}

export interface LocatedFinding extends Finding {
  file: string;
  position: Position;
}

export type Report = (ruleId: RuleId, path: PathSegment[], message: string) => void;

export function lintSource(source: PolicySource): LocatedFinding[] {
  const out: LocatedFinding[] = [];
  const locate = (f: Finding): LocatedFinding => ({
    ...f,
    file: source.file,
    position: source.locate(f.path),
  });
  if (!source.policy) {
    return source.issues.map((i) => ({
      ruleId: "CUS001",
      level: "error",
      message: i.message,
      path: i.path,
      file: source.file,
      position: i.position,
    }));
  }
  for (const f of lintPolicy(source.policy)) out.push(locate(f));
  return out.sort((a, b) => a.position.line - b.position.line || a.position.column - b.position.column);
}

/** Parses and lints; throws PolicyInputError when the text is not YAML. */
export function lintText(text: string, file: string): LocatedFinding[] {
  return lintSource(parsePolicy(text, file));
}

export function lintPolicy(policy: Policy): Finding[] {
  const findings: Finding[] = [];
  const report: Report = (ruleId, path, message) =>
    findings.push({ ruleId, level: ruleInfo(ruleId).level, message, path });
  const unknown = checkNames(policy, report);
  checkConflicts(policy, report);
  checkAdministerAndUse(policy, report);
  checkGrants(policy, report);
  checkBreakGlass(policy, report);
  checkCredentialRoles(policy, report);
  if (!unknown) checkMinting(policy, memberClasses(policy, new Set()), report);
  // The quorum checks count principals by role and organisation; with names missing they would mislead.
  if (!unknown) lintQuorums(policy, report);
  return findings;
}

function checkNames(policy: Policy, report: Report): boolean {
  let found = false;
  const has = (o: object, k: string) => Object.hasOwn(o, k);
  const need = (kind: "role" | "organisation" | "principal", name: string, path: PathSegment[]) => {
    const table =
      kind === "role" ? policy.roles : kind === "organisation" ? policy.organisations : policy.principals;
    if (has(table, name)) return;
    found = true;
    const plural = kind === "role" ? "roles" : kind === "organisation" ? "organisations" : "principals";
    report("CUS002", path, `unknown ${kind} '${name}': declare it under ${plural}`);
  };
  const roles = (list: readonly string[], path: PathSegment[]) => {
    for (const [i, r] of list.entries()) need("role", r, [...path, i]);
  };
  const principals = (list: readonly string[], path: PathSegment[]) => {
    for (const [i, p] of list.entries()) need("principal", p, [...path, i]);
  };

  for (const [id, p] of Object.entries(policy.principals)) {
    if (isReservedPrincipal(id)) {
      found = true;
      report("CUS002", ["principals", id], `principal name ${reservedReason(id)}: choose another name`);
    }
    need("organisation", p.organisation, ["principals", id, "organisation"]);
    roles(p.roles, ["principals", id, "roles"]);
  }
  policy.identities.forEach((r, i) => {
    need("organisation", r.organisation, ["identities", i, "organisation"]);
    roles(r.roles, ["identities", i, "roles"]);
  });
  for (const [i, c] of policy.conflicts.entries()) roles(c.roles, ["conflicts", i, "roles"]);
  for (const [i, k] of policy.keys.entries())
    need("organisation", k.organisation, ["keys", i, "organisation"]);
  for (const [i, g] of policy.grants.entries()) {
    roles(g.roles, ["grants", i, "roles"]);
    for (const [j, o] of (g.organisations ?? []).entries())
      need("organisation", o, ["grants", i, "organisations", j]);
  }
  if (policy.breakGlass) {
    roles(policy.breakGlass.roles, ["breakGlass", "roles"]);
    if (policy.breakGlass.review) roles(policy.breakGlass.review.roles, ["breakGlass", "review", "roles"]);
  }
  policy.approvals.forEach((a, i) => {
    roles(a.eligible.roles, ["approvals", i, "eligible", "roles"]);
    principals(a.eligible.principals, ["approvals", i, "eligible", "principals"]);
  });
  if (policy.custody) {
    roles(policy.custody.holders.roles, ["custody", "holders", "roles"]);
    principals(policy.custody.holders.principals, ["custody", "holders", "principals"]);
  }
  for (const section of ["grants", "approvals", "identities"] as const) {
    const seen = new Set<string>();
    policy[section].forEach((item, i) => {
      if (seen.has(item.id)) {
        found = true;
        report(
          "CUS002",
          [section, i, "id"],
          `duplicate id '${item.id}' in ${section}: ids name rules in the audit`,
        );
      }
      seen.add(item.id);
    });
  }
  return found;
}

function checkConflicts(policy: Policy, report: Report): void {
  for (const [id, p] of Object.entries(policy.principals)) {
    const c = conflictAmong(policy, p.roles);
    if (c)
      report(
        "CUS003",
        ["principals", id, "roles"],
        `principal ${id} holds conflicting roles ${c[0]} and ${c[1]}`,
      );
  }
  policy.identities.forEach((r, i) => {
    const c = conflictAmong(policy, r.roles);
    if (c)
      report(
        "CUS003",
        ["identities", i, "roles"],
        `identity rule ${r.id} maps to conflicting roles ${c[0]} and ${c[1]}`,
      );
  });
}

const ADMIN: readonly string[] = ADMIN_OPERATIONS;
const USE: readonly string[] = USE_OPERATIONS;

interface Reach {
  source: string;
  path: PathSegment[];
  patterns: readonly string[];
}

/** The key patterns a set of roles of one organisation may administer, and may use (grants and break-glass). */
function reaches(policy: Policy, roles: readonly string[], org: string) {
  const admin: Reach[] = [];
  const use: Reach[] = [];
  policy.grants.forEach((g, i) => {
    if (!g.roles.some((r) => roles.includes(r)) || (g.organisations && !g.organisations.includes(org)))
      return;
    if (g.purposes.length === 0) return;
    const reach = {
      source: `grant ${g.id}`,
      path: ["grants", i],
      patterns: g.keys.map((p) => instantiate(p, org)),
    };
    if (g.operations.some((o) => ADMIN.includes(o))) admin.push(reach);
    if (g.operations.some((o) => USE.includes(o))) use.push(reach);
  });
  const bg = policy.breakGlass;
  if (bg?.roles.some((r) => roles.includes(r))) {
    use.push({
      source: "break-glass",
      path: ["breakGlass"],
      patterns: bg.keys.map((p) => instantiate(p, org)),
    });
  }
  for (const a of admin) {
    for (const u of use) {
      const pa = a.patterns.find((p) => u.patterns.some((q) => overlaps(p, q)));
      if (pa !== undefined) return { admin: a, use: u, pattern: pa };
    }
  }
  return null;
}

function checkAdministerAndUse(policy: Policy, report: Report): void {
  const orgs = Object.keys(policy.organisations);
  const flagged = new Set<string>();
  for (const role of Object.keys(policy.roles)) {
    for (const org of orgs) {
      const r = reaches(policy, [role], org);
      if (!r) continue;
      flagged.add(role);
      report(
        "CUS004",
        r.use.path,
        `role ${role} can administer keys matching ${r.pattern} (${r.admin.source}) and use them (${r.use.source})`,
      );
      break;
    }
  }
  for (const [id, p] of Object.entries(policy.principals)) {
    if (p.roles.some((r) => flagged.has(r))) continue;
    const r = reaches(policy, p.roles, p.organisation);
    if (r) {
      report(
        "CUS004",
        ["principals", id, "roles"],
        `principal ${id} can administer keys matching ${r.pattern} (${r.admin.source}) and use them (${r.use.source}) through roles ${p.roles.join(", ")}`,
      );
    }
  }
}

function checkGrants(policy: Policy, report: Report): void {
  const classes = memberClasses(policy, new Set());
  policy.grants.forEach((g, i) => {
    const keyOps = g.operations.filter(isKeyOperation);
    if (g.purposes.length === 0) {
      report(
        "CUS011",
        ["grants", i, "purposes"],
        `grant ${g.id} lists no purposes of use, so it allows nothing`,
      );
    } else if (keyOps.length > 0 && g.keys.length === 0) {
      report(
        "CUS011",
        ["grants", i, "keys"],
        `grant ${g.id} has key operations (${keyOps.join(", ")}) but no key patterns`,
      );
    }
    if (g.acrossOrganisations || keyOps.length === 0) return;
    // The organisations whose principals (or identity rules) can hold this grant.
    const orgs = new Set(
      classes
        .filter(
          (c) =>
            c.roles.some((r) => g.roles.includes(r)) &&
            (!g.organisations || g.organisations.includes(c.organisation)),
        )
        .map((c) => c.organisation),
    );
    for (const org of orgs) {
      const other = policy.keys.find(
        (k) =>
          k.organisation !== org &&
          g.keys.some((p) => overlaps(instantiate(p, org), k.pattern)) &&
          conditionsSatisfiable(g, { organisation: org }, k),
      );
      if (other) {
        report(
          "CUS005",
          ["grants", i, "keys"],
          `grant ${g.id} lets ${g.roles.join("/")} of ${org} reach ${other.pattern}, the keys of ${other.organisation}, with no condition tying the record's institution to the caller`,
        );
        return;
      }
    }
  });
}

function checkBreakGlass(policy: Policy, report: Report): void {
  const bg = policy.breakGlass;
  if (!bg) return;
  if (!bg.review) {
    report(
      "CUS006",
      ["breakGlass"],
      "break-glass has no review: every ETREAT use beyond grants must be reviewed by someone else",
    );
    return;
  }
  const classes = memberClasses(policy, new Set());
  const reviewers = (c: (typeof classes)[number]) =>
    c.roles.some((r) => bg.review!.roles.includes(r)) && !conflictAmong(policy, c.roles);
  for (const c of classes) {
    if (!c.roles.some((r) => bg.roles.includes(r)) || conflictAmong(policy, c.roles)) continue;
    // Reviewers other than the user: everyone eligible, less the user if the user is a reviewer too.
    const others = classes.reduce(
      (n, d) => n + (reviewers(d) ? (d.identityRule ? 2 : d.names.length) - (d === c ? 1 : 0) : 0),
      0,
    );
    if (others <= 0) {
      const who = c.identityRule ? `principals of identity rule ${c.identityRule}` : c.names.join(", ");
      report(
        "CUS006",
        ["breakGlass", "review", "roles"],
        `no one other than ${who} may review their break-glass use`,
      );
      return;
    }
  }
}
