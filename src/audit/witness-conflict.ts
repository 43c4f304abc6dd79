/**
 * What a witness may call proof against a log (docs/FORMATS.md §8.3): two
 * heads, both validly signed by the log's key, that no append-only log whose
 * timestamps never decrease (§8.1) could have signed. Only signed statements
 * count, because only they hold up in front of a third party: a consistency
 * proof is an unsigned HTTP answer that a flaky proxy, a truncated read or a
 * man in the middle can spoil, so a proof that fails to parse or to verify
 * is an error to retry, never evidence. Kept apart from witness.ts so the rule
 * is one small pure function the FORMATS text can be checked against, and so
 * evidence recorded by earlier versions is judged by the same rule.
 */
import { constantTimeEqual } from "../crypto/bytes.js";
import type { TreeHeadRecord } from "../store/store.js";
import { treeHeadFromJson, verifyTreeHead } from "./tree-head.js";
import type { Evidence } from "./witness-store.js";

/** The kinds of conflict two signed heads can prove. */
export type ConflictKind = "fork" | "rollback";

/**
 * Whether two heads signed by one log conflict, and how:
 * `fork` — the same size with different roots;
 * `rollback` — the sizes and the timestamps are in strictly opposite order
 * (the smaller tree was signed later: the log shrank). Anything else — an
 * older head served again, a larger head whose proof did not check out — is
 * not proof of anything. The caller has checked both signatures.
 */
export function conflictOf(a: TreeHeadRecord, b: TreeHeadRecord): ConflictKind | null {
  if (a.size === b.size) return constantTimeEqual(a.root, b.root) ? null : "fork";
  const [small, large] = a.size < b.size ? [a, b] : [b, a];
  return small.timestamp > large.timestamp ? "rollback" : null;
}

/**
 * Whether stored evidence proves a conflict by itself: both heads parse, are
 * validly signed by the log it is about, and conflict. Evidence an earlier
 * witness recorded for a proof that failed (`inconsistent`), or for an older
 * head served again, does not, and so does not stop countersigning.
 */
export function evidenceProvesConflict(e: Evidence): boolean {
  try {
    const seen = treeHeadFromJson(e.seen);
    const conflicting = treeHeadFromJson(e.conflicting);
    for (const { head, publicKey } of [seen, conflicting]) {
      if (e.seen.publicKey !== e.log || e.conflicting.publicKey !== e.log) return false;
      if (!verifyTreeHead(publicKey, head)) return false;
    }
    return conflictOf(seen.head, conflicting.head) !== null;
  } catch {
    return false;
  }
}
