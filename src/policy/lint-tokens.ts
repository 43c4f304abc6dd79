/**
 * The linter's checks on credentials: whom `token-create` grants let their
 * holders mint tokens for (CUS012), whether one principal can gather
 * conflicting roles through two kinds of credential (CUS013), and minting as
 * a power the smallest-coalition search must count (CUS100): a minter
 * present in a coalition brings every principal it may mint for. Minting is
 * judged by the rules of src/policy/minting.ts, which the server applies to
 * every mint, so the coalition reported is what the running node allows.
 */
import type { Goal, MemberClass } from "./coalition.js";
import { conflictAmong, type RequestPrincipal } from "./decide.js";
import type { Grant, Policy } from "./document.js";
import { rulesCanShareName } from "./identity.js";
import type { Report } from "./lint.js";
import { mintCheck, mintRuleCovers } from "./minting.js";

/** The classes that may hold the grant (roles, organisation, no conflict of their own). */
function holders(policy: Policy, classes: readonly MemberClass[], g: Grant): MemberClass[] {
  return classes.filter(
    (c) =>
      g.roles.some((r) => c.roles.includes(r)) &&
      (!g.organisations || g.organisations.includes(c.organisation)) &&
      !conflictAmong(policy, c.roles),
  );
}

const minting = (g: Grant) => g.operations.includes("token-create") && g.purposes.length > 0;

function declared(policy: Policy): RequestPrincipal[] {
  return Object.entries(policy.principals).map(([id, p]) => ({
    id,
    organisation: p.organisation,
    roles: p.roles,
  }));
}

/** CUS012 (and CUS011 for mint rules that mint nothing). */
export function checkMinting(policy: Policy, classes: readonly MemberClass[], report: Report): void {
  const everyone = declared(policy);
  policy.grants.forEach((g, i) => {
    if (g.tokens && !g.operations.includes("token-create")) {
      report(
        "CUS011",
        ["grants", i, "tokens"],
        `grant ${g.id} has a tokens rule but not the token-create operation`,
      );
    }
    if (!minting(g)) return;
    if (!g.tokens) {
      report(
        "CUS011",
        ["grants", i, "operations"],
        `grant ${g.id} allows token-create without a tokens rule, so it lets nobody mint a token`,
      );
      return;
    }
    const rule = g.tokens;
    for (const c of holders(policy, classes, g)) {
      const who = c.identityRule ? `principals of identity rule ${c.identityRule}` : c.names.join(", ");
      for (const t of everyone) {
        if (!mintRuleCovers(rule, c.organisation, t)) continue;
        if (t.organisation !== c.organisation) {
          report(
            "CUS012",
            ["grants", i, "tokens", "mint"],
            `grant ${g.id} lets ${who} of ${c.organisation} mint credentials for ${t.id} of ${t.organisation}: narrow tokens.mint (e.g. "{org}-*")`,
          );
          return;
        }
        const conflict = conflictAmong(policy, [...c.roles, ...t.roles]);
        if (conflict) {
          report(
            "CUS012",
            ["grants", i, "tokens", "mint"],
            `grant ${g.id} lets ${who} mint credentials for ${t.id}, whose roles together with theirs conflict (${conflict[0]} and ${conflict[1]})`,
          );
          return;
        }
      }
    }
  });
}

/** CUS013: two identity rules that can name one principal and give it conflicting roles together. */
export function checkCredentialRoles(policy: Policy, report: Report): void {
  const rules = policy.identities;
  rules.forEach((b, j) => {
    for (const a of rules.slice(0, j)) {
      if (!rulesCanShareName(a, b)) continue;
      const conflict = conflictAmong(policy, [...a.roles, ...b.roles]);
      if (!conflict) continue;
      report(
        "CUS013",
        ["identities", j, "roles"],
        `identity rules ${a.id} (${a.issuer}) and ${b.id} (${b.issuer}) can name the same principal and together give it conflicting roles ${conflict[0]} and ${conflict[1]}: pin the principal claim in match, or change the roles`,
      );
      return;
    }
  });
}

/**
 * For each class, how many members of each other class its members may mint
 * tokens for, by some grant they hold (and every rule of minting.ts).
 */
export function mintGraph(policy: Policy, classes: readonly MemberClass[]): number[][] {
  const grants = policy.grants.filter((g) => minting(g) && g.tokens);
  return classes.map((c) => {
    const mine = grants.filter((g) => holders(policy, [c], g).length > 0);
    // A member of the class, as mintCheck sees the minter (an identity rule's members have no declared name).
    const minter = { id: c.names[0] ?? "", organisation: c.organisation, roles: c.roles };
    const purposes = [...new Set(mine.flatMap((g) => g.purposes))];
    return classes.map((t) => {
      if (mine.length === 0 || t.identityRule !== undefined) return 0;
      return t.names.filter((id) => purposes.some((pu) => mintCheck(policy, minter, pu, id).ok)).length;
    });
  });
}

/** The counts a coalition acts with: its members, and the principals its minters may mint for. */
export function expandCounts(classes: readonly MemberClass[], graph: number[][], counts: readonly number[]) {
  const out = [...counts];
  counts.forEach((n, i) => {
    if (n === 0) return;
    graph[i]!.forEach((m, j) => {
      if (m > 0) out[j] = Math.min(classes[j]!.names.length, out[j]! + m);
    });
  });
  return out;
}

/** The goal with minted tokens counted; a minter is relevant when a class it mints for is. */
export function withMinting(classes: readonly MemberClass[], graph: number[][], goal: Goal): Goal {
  if (!graph.some((row) => row.some((m) => m > 0))) return goal;
  const expanded: Goal = (counts) => goal(expandCounts(classes, graph, counts));
  if (goal.relevant) {
    const relevant = goal.relevant;
    expanded.relevant = classes.map(
      (_, i) => relevant[i] !== false || graph[i]!.some((m, j) => m > 0 && relevant[j] !== false),
    );
  }
  return expanded;
}
