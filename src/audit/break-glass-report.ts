/**
 * The break-glass report: every use of a key that the policy allowed only by
 * break-glass, with whether it has been reviewed, by whom and when — by
 * default only those awaiting review, oldest first, so the overdue ones
 * lead. Built from the review items (GET /v1/reviews) rather than from the
 * events, because the review's state lives there; each row keeps the
 * request id that finds the flagged events in the log. The rows use the
 * disclosure report's columns, so the same renderer gives text, JSON, CSV
 * and HTML.
 */
import type { ReviewRecord } from "../store/store.js";
import type { DisclosureRow } from "./disclosures.js";

export function breakGlassRows(reviews: readonly ReviewRecord[], now: Date = new Date()): DisclosureRow[] {
  return reviews.map((r) => {
    const overdue = r.closedAt === null && Date.parse(r.dueAt) < now.getTime();
    const state =
      r.closedAt === null
        ? `${overdue ? "OVERDUE" : "awaiting review"} by ${r.reviewRoles.join(" or ")} (due ${r.dueAt})`
        : `reviewed by ${r.closedBy} at ${r.closedAt}`;
    return {
      time: r.createdAt,
      principal: r.principal,
      organisation: r.organisation || "-",
      key: r.key ?? "-",
      keyVersion: null,
      context: `request=${r.requestId}; review=${r.id}`,
      operation: r.operation,
      purpose: r.purpose,
      decision: state,
      reason: r.note === null ? `${r.rule}: ${r.reason}` : `${r.rule}: ${r.reason}; finding: ${r.note}`,
    };
  });
}
