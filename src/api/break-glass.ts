/**
 * Break-glass: when the policy allows a request only because a clinician
 * invoked ETREAT beyond their grants, a review item is written — durably,
 * with its flagged audit event, in one store transaction — before the key
 * is touched, so there is never a break-glass use without something for a
 * reviewer to close. The review is due after the policy's `within`; the
 * reviewer must hold one of the policy's review roles and is never the user
 * (checked by the route, again by the store, and by a database constraint).
 */
import { randomUUID } from "node:crypto";
import type { Auditor } from "../audit/auditor.js";
import { durably } from "../audit/auditor.js";
import type { Decision, Principal } from "../policy/authorizer.js";
import { durationMs } from "../policy/document.js";
import type { ReviewRecord, Store } from "../store/store.js";

export interface BreakGlassUse {
  requestId: string;
  principal: Principal;
  operation: string;
  key: string | null;
  purpose: string;
  decision: Decision;
}

export async function openReview(
  store: Store,
  auditor: Auditor,
  use: BreakGlassUse,
  now: Date = new Date(),
): Promise<ReviewRecord> {
  const review = use.decision.review;
  if (!review) throw new TypeError("openReview needs a break-glass decision with a review");
  const record: ReviewRecord = {
    id: randomUUID(),
    requestId: use.requestId,
    principal: use.principal.id,
    organisation: use.principal.organisation ?? "",
    operation: use.operation,
    key: use.key,
    purpose: use.purpose,
    rule: use.decision.rule,
    reason: use.decision.reason,
    reviewRoles: [...review.roles],
    createdAt: now.toISOString(),
    dueAt: new Date(now.getTime() + durationMs(review.within)).toISOString(),
    closedBy: null,
    closedAt: null,
    note: null,
  };
  await durably(() =>
    store.putReview(
      record,
      auditor.event({
        principal: record.principal,
        operation: "review.open",
        decision: "allow",
        reason: `break-glass ${record.operation}${record.key ? ` on ${record.key}` : ""}: review ${record.id} by ${review.roles.join(" or ")} due ${record.dueAt}`,
        key: record.key ?? undefined,
        purpose: record.purpose,
        requestId: record.requestId,
        rule: record.rule,
        breakGlass: true,
      }),
    ),
  );
  return record;
}
