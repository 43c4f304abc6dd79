/**
 * Who may approve or deny one approval request: the same conditions under
 * which `countApprovals` (src/policy/decide.ts) counts an approval, checked
 * one by one so that a refusal names the one that failed. Pure — the policy,
 * the stored request and the voter in, a refusal or null out — so the
 * service refuses every approval that would not count, and a request never
 * holds approvals that silently do not count. The voter is compared with
 * the requester by policy principal name: the identity whatever the
 * credential (token, JWT, certificate). At execution the votes are
 * weighed again under the running policy (`standingVotes`): a vote counts
 * only if its voter is still eligible now.
 */
import {
  conflictAmong,
  declaredPrincipal,
  type GivenApproval,
  isEligible,
  type RequestPrincipal,
} from "../policy/decide.js";
import type { Policy } from "../policy/document.js";
import type { ApprovalRecord } from "../store/store.js";

export interface VoteRefusal {
  status: 403 | 409;
  code: string;
  rule: string;
  message: string;
}

const no = (status: 403 | 409, code: string, rule: string, message: string): VoteRefusal => ({
  status,
  code,
  rule,
  message,
});

export function voteRefusal(
  policy: Policy,
  record: ApprovalRecord,
  voter: RequestPrincipal & { via?: string | undefined },
  approve: boolean,
): VoteRefusal | null {
  const verb = approve ? "approve" : "deny";
  if (voter.id === record.requester) {
    return no(
      403,
      "self_approval",
      "approval:self",
      `${voter.id} requested approval ${record.id} and cannot ${verb} it under any credential (signed in ${voter.via ?? "by token"}; a principal's tokens, JWTs and certificates are one person)`,
    );
  }
  const rule = policy.approvals.find((a) => a.id === record.rule);
  if (!rule) {
    return no(
      409,
      "rule_gone",
      "approval:rule-gone",
      `the policy no longer has approval rule ${record.rule}`,
    );
  }
  const conflict = conflictAmong(policy, voter.roles);
  if (conflict || !isEligible(rule.eligible, voter)) {
    const who = [...rule.eligible.roles, ...rule.eligible.principals].join(", ");
    const why = conflict ? `; holds conflicting roles ${conflict.join("/")}` : "";
    return no(
      403,
      "not_eligible",
      "approval:not-eligible",
      `${voter.id} is not eligible under ${rule.id} (${who}${why})`,
    );
  }
  if (!approve) return null;
  if (rule.outsideRequesterOrganisation && voter.organisation === record.organisation) {
    return no(
      403,
      "same_organisation",
      "approval:outside-organisation",
      `${rule.id} needs approvers from outside ${record.organisation}, the requester's organisation`,
    );
  }
  if (record.approvals.some((v) => v.principal === voter.id)) {
    return no(409, "already_approved", "approval:once", `${voter.id} has already approved ${record.id}`);
  }
  const sameOrg = record.approvals.find((v) => v.organisation === voter.organisation);
  if (rule.distinctOrganisations && sameOrg) {
    return no(
      403,
      "organisation_already_approved",
      "approval:distinct-organisations",
      `${rule.id} needs approvers from distinct organisations; ${sameOrg.principal} of ${voter.organisation} has approved already`,
    );
  }
  return null;
}

/** A vote that no longer counts under the running policy, and why. */
export interface LapsedVote {
  principal: string;
  why: string;
}

/**
 * The recorded votes as the running policy sees their voters now (it may
 * have been reloaded since they voted): each voter is resolved again by the
 * credential kind they voted with — a declared principal for a token or a
 * certificate named by its CN, the identity rule for a JWT or a mapped
 * certificate — and must still be eligible under the request's rule,
 * without conflicting roles. The roles recorded at vote time only tell
 * what was; these are what counts.
 */
export function standingVotes(
  policy: Policy,
  record: ApprovalRecord,
): { given: GivenApproval[]; lapsed: LapsedVote[] } {
  const rule = policy.approvals.find((a) => a.id === record.rule);
  const given: GivenApproval[] = [];
  const lapsed: LapsedVote[] = [];
  for (const v of record.approvals) {
    const now = currentVoter(policy, v.principal, v.via);
    if (typeof now === "string") {
      lapsed.push({ principal: v.principal, why: now });
      continue;
    }
    const conflict = conflictAmong(policy, now.roles);
    if (conflict) {
      lapsed.push({ principal: v.principal, why: `now holds conflicting roles ${conflict.join("/")}` });
      continue;
    }
    if (rule && !isEligible(rule.eligible, now)) {
      const roles = now.roles.length ? now.roles.join(", ") : "none";
      lapsed.push({
        principal: v.principal,
        why: `no longer eligible under ${rule.id} (roles now: ${roles})`,
      });
      continue;
    }
    given.push({ principal: now, at: Date.parse(v.at) });
  }
  return { given, lapsed };
}

/** The voter under the running policy, or why there is none. */
function currentVoter(policy: Policy, id: string, via: string): RequestPrincipal | string {
  const declared = declaredPrincipal(policy, id);
  const ruleId = /^(?:jwt|mtls):(.+)$/.exec(via)?.[1];
  if (ruleId === undefined || via === "mtls:cn") {
    return declared ?? "is no longer a principal of the policy";
  }
  const identity = policy.identities.find((r) => r.id === ruleId);
  if (!identity) return `voted through identity rule ${ruleId}, which the policy no longer has`;
  if (declared && declared.organisation !== identity.organisation) {
    return `is now declared in ${declared.organisation}, not ${identity.organisation}`;
  }
  // Separation of duty is per principal: roles declared for the name count with the rule's.
  const roles = [...new Set([...identity.roles, ...(declared?.roles ?? [])])];
  return { id, organisation: identity.organisation, roles };
}
