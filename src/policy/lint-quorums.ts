/**
 * The linter's counting checks: approval rules (satisfiable at all? by
 * services alone? inside one organisation?), custody quorums (satisfiable?
 * within one organisation?) and, per declared key, the smallest coalition
 * able to decrypt it or to reconstruct the root key. All of them are
 * questions about coalitions, answered by the exact search in coalition.ts
 * over the abilities in abilities.ts, so "one organisation can do it alone"
 * comes with the names of the people who could.
 */
import { actsOn, approvable, custodyGoal, eligibleFor, mayHoldShare, useGoal } from "./abilities.js";
import {
  capacity,
  describeMembers,
  type MemberClass,
  memberClasses,
  type SearchResult,
  smallestCoalition,
} from "./coalition.js";
import { type ApprovalRule, isKeyOperation, type Policy } from "./document.js";
import type { Report } from "./lint.js";
import { expandCounts, mintGraph, withMinting } from "./lint-tokens.js";
import { instantiate } from "./pattern.js";

export function lintQuorums(policy: Policy, report: Report): void {
  const individual = new Set([
    ...policy.approvals.flatMap((a) => a.eligible.principals),
    ...(policy.custody?.holders.principals ?? []),
  ]);
  const classes = memberClasses(policy, individual);
  for (const [i, rule] of policy.approvals.entries()) checkApproval(policy, classes, rule, i, report);
  const root = checkCustody(policy, classes, report);
  reportKeyCoalitions(policy, classes, root, report);
}

/** The classes that could request an operation the rule governs (on a key it covers). */
function requesters(policy: Policy, classes: readonly MemberClass[], rule: ApprovalRule): number[] {
  const out: number[] = [];
  classes.forEach((c, i) => {
    const can = rule.operations.some((op) =>
      isKeyOperation(op)
        ? rule.keys.some((p) =>
            actsOn(policy, c, op, { pattern: instantiate(p, c.organisation), organisation: c.organisation }),
          )
        : actsOn(policy, c, op, { pattern: "*", organisation: c.organisation }),
    );
    if (can) out.push(i);
  });
  return out;
}

function checkApproval(
  policy: Policy,
  classes: readonly MemberClass[],
  rule: ApprovalRule,
  index: number,
  report: Report,
): void {
  const caps = classes.map(capacity);
  const actors = requesters(policy, classes, rule);
  const candidates = actors.length > 0 ? actors : [-1];
  const path = ["approvals", index];
  if (!candidates.some((i) => approvable(policy, classes, caps, i, rule))) {
    const eligible = classes.filter((c) => eligibleFor(rule.eligible, c));
    const people = eligible.reduce((n, c) => n + capacity(c), 0);
    const orgs = new Set(eligible.map((c) => c.organisation)).size;
    report(
      "CUS009",
      [...path, "required"],
      `approval rule ${rule.id} needs ${rule.required} approval(s)${rule.distinctOrganisations ? " from distinct organisations" : ""}, never from the requester, but only ${people} principal(s) in ${orgs} organisation(s) are eligible`,
    );
    return;
  }
  const services = (c: MemberClass) => c.kind === "service";
  const byServices = actors.find((i) => approvable(policy, classes, caps, i, rule, services));
  if (byServices !== undefined) {
    const names = classes
      .filter((c) => services(c) && eligibleFor(rule.eligible, c))
      .flatMap((c) => (c.identityRule ? [`identity rule ${c.identityRule}`] : c.names));
    report(
      "CUS007",
      [...path, "eligible"],
      `approval rule ${rule.id} can be met by services alone (${names.join(", ")}), so one person can request ${rule.operations.join("/")} and have it approved`,
    );
  }
  const goal = (counts: readonly number[]) =>
    actors.some((i) => counts[i]! > 0 && approvable(policy, classes, counts, i, rule));
  for (const org of Object.keys(policy.organisations)) {
    const r = smallestCoalition(classes, goal, (c) => c.organisation === org);
    if (r.found) {
      report(
        "CUS008",
        path,
        `${describeMembers(policy, r.coalition)} can request ${rule.operations.join("/")} and give every approval rule ${rule.id} needs`,
      );
      return;
    }
  }
}

function checkCustody(policy: Policy, classes: readonly MemberClass[], report: Report): SearchResult | null {
  const custody = policy.custody;
  if (!custody) return null;
  const goal = custodyGoal(policy, classes);
  const root = smallestCoalition(classes, goal);
  if (!root.found && root.exhaustive) {
    const holders = classes.filter((c) => mayHoldShare(policy, c));
    const count = holders.reduce((n, c) => n + capacity(c), 0);
    const orgs = new Set(holders.map((c) => c.organisation)).size;
    report(
      "CUS009",
      ["custody", "threshold"],
      `custody needs ${custody.threshold} shares from at least ${custody.minOrganisations} organisation(s)${custody.maxPerOrganisation ? `, at most ${custody.maxPerOrganisation} per organisation` : ""}, but only ${count} principal(s) in ${orgs} organisation(s) may hold shares`,
    );
    return root;
  }
  for (const org of Object.keys(policy.organisations)) {
    const alone = smallestCoalition(classes, goal, (c) => c.organisation === org);
    if (alone.found) {
      report(
        "CUS010",
        ["custody"],
        `${describeMembers(policy, alone.coalition)} can reconstruct the root key: require custody.minOrganisations ≥ 2`,
      );
    }
  }
  if (root.found) {
    report(
      "CUS100",
      ["custody"],
      `${describeMembers(policy, root.coalition)} can reconstruct the root key, and with it every key (${root.coalition.size} share holders)`,
    );
  } else if (!root.exhaustive) {
    report("CUS100", ["custody"], `reconstructing the root key takes at least ${root.atLeast} share holders`);
  }
  return root;
}

function reportKeyCoalitions(
  policy: Policy,
  classes: readonly MemberClass[],
  root: SearchResult | null,
  report: Report,
): void {
  const rootNote = root?.found ? `; the root-key quorum takes ${root.coalition.size}` : "";
  // Minting is a way to act as another principal, so coalitions count it.
  const graph = mintGraph(policy, classes);
  policy.keys.forEach((key, i) => {
    const r = smallestCoalition(
      classes,
      withMinting(classes, graph, useGoal(policy, classes, "decrypt", key)),
    );
    if (r.found) {
      const acting = expandCounts(classes, graph, r.coalition.counts);
      const j = classes.findIndex((c, j) => acting[j]! > 0 && actsOn(policy, c, "decrypt", key) !== null);
      const minted = j >= 0 && r.coalition.counts[j] === 0;
      const how = `${j >= 0 ? actsOn(policy, classes[j]!, "decrypt", key) : "?"}${minted ? `, as ${classes[j]!.names.join(" or ")} through a minted token` : ""}`;
      report(
        "CUS100",
        ["keys", i],
        `${describeMembers(policy, r.coalition)} can decrypt ${key.pattern} (${how}, ${r.coalition.size} principal(s))${rootNote}`,
      );
    } else if (r.exhaustive) {
      report(
        "CUS100",
        ["keys", i],
        `no coalition of principals can decrypt ${key.pattern} through grants${rootNote}`,
      );
    } else {
      report(
        "CUS100",
        ["keys", i],
        `decrypting ${key.pattern} takes at least ${r.atLeast} principals${rootNote}`,
      );
    }
    // Destruction is where approvals usually bite, so the coalition shows who must agree.
    const d = smallestCoalition(
      classes,
      withMinting(classes, graph, useGoal(policy, classes, "destroy", key)),
    );
    if (d.found) {
      report(
        "CUS100",
        ["keys", i],
        `${describeMembers(policy, d.coalition)} can destroy ${key.pattern} (${d.coalition.size} principal(s), approvals included)`,
      );
    }
  });
}
