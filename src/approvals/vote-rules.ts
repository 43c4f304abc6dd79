/**
 * Who may approve or deny one approval request: the same conditions under
 * which `countApprovals` (src/policy/decide.ts) counts an approval, checked
 * one by one so that a refusal names the one that failed. Pure — the policy,
 * the stored request and the voter in, a refusal or null out — so the
 * service refuses every approval that would not count, and a request never
 * holds approvals that silently do not count. The voter is compared with
 * the requester by policy principal name: the identity whatever the
 * credential (token, JWT, certificate).
 */
import { conflictAmong, isEligible, type RequestPrincipal } from "../policy/decide.js";
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
