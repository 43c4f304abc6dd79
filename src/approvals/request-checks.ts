/**
 * Why a stored approval request cannot take a vote or run now, as pure
 * functions of the request and what the caller brings: ended or expired,
 * named by another digest than the one it binds, recorded in a format that
 * can no longer run, bound to other parameters, or short of approvals that
 * count under the policy in force. Each returns a refusal naming its rule,
 * or null; the service audits and throws it (like src/approvals/vote-rules.ts).
 */
import type { PolicyDecision } from "../policy/decide.js";
import type { ApprovalRecord } from "../store/store.js";
import { differingFields, isCurrentFormat } from "./binding.js";
import type { LapsedVote, VoteRefusal } from "./vote-rules.js";

export type Refusal = VoteRefusal;

const no = (status: 403 | 409, code: string, rule: string, message: string): Refusal => ({
  status,
  code,
  rule,
  message,
});

/** No longer pending (denied, executed), or expired. */
export function endedRefusal(record: ApprovalRecord, now: number): Refusal | null {
  if (record.state !== "pending") {
    return no(
      409,
      "not_pending",
      "approval:ended",
      `approval request ${record.id} is ${record.state} and can no longer change or run`,
    );
  }
  if (now >= Date.parse(record.expiresAt)) {
    return no(
      409,
      "approval_expired",
      "approval:expired",
      `approval request ${record.id} expired at ${record.expiresAt}; request it again`,
    );
  }
  return null;
}

/** The caller names another digest than the request binds: a stale view, or none at all (a forged form). */
export function digestRefusal(record: ApprovalRecord, seen: string | undefined): Refusal | null {
  if (seen === undefined || seen === record.paramsHash) return null;
  return no(
    409,
    "digest_mismatch",
    "approval:digest",
    `approval ${record.id} binds parameters sha256:${record.paramsHash}, not the digest given; read it again (GET /v1/approvals/${record.id}) and name its paramsHash`,
  );
}

/** Format 1 bound request bodies in the clear: such a request never runs. */
export function formatRefusal(record: ApprovalRecord): Refusal | null {
  if (isCurrentFormat(JSON.parse(record.params) as Record<string, unknown>)) return null;
  return no(
    409,
    "approval_format",
    "approval:format",
    `approval ${record.id} was recorded in approval format 1, which bound request bodies in the clear; it can no longer run: request it again`,
  );
}

/** Other parameters than approved. Names the fields only: values may be MACs or bodies, and this reaches the logs. */
export function parametersRefusal(
  record: ApprovalRecord,
  params: string,
  paramsHash: string,
): Refusal | null {
  if (paramsHash === record.paramsHash) return null;
  return no(
    403,
    "approval_mismatch",
    "approval:parameters",
    `this request's parameters (sha256:${paramsHash}) differ from those approved under ${record.id} (sha256:${record.paramsHash}) in: ${differingFields(record.params, params).join(", ")}`,
  );
}

/** The policy in force does not allow the operation with the votes that still count. */
export function decisionRefusal(
  record: ApprovalRecord,
  d: PolicyDecision,
  counted: number,
  lapsed: readonly LapsedVote[],
): Refusal | null {
  if (d.decision === "allow") return null;
  if (d.decision === "deny") {
    return no(403, "forbidden", d.rule, `the policy in force refuses ${record.operation}: ${d.reason}`);
  }
  const have = `${record.id} has ${counted} of ${record.required} approvals that count`;
  if (lapsed.length > 0) {
    const why = lapsed.map((v) => `${v.principal} ${v.why}`).join("; ");
    return no(
      403,
      "approvals_lapsed",
      "approval:lapsed",
      `${have} under the policy in force; votes that no longer count: ${why}`,
    );
  }
  return no(403, "approval_incomplete", d.rule, `${have}: ${d.reason}`);
}
