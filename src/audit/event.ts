/**
 * The audit event: one record per request, allowed or denied, ceremony steps
 * included (docs/FORMATS.md §8). The type is the contract between the places
 * that produce events (api, custody) and the store that chains them; it holds
 * no secrets and no PHI — context values arrive here already split into
 * keyed HMACs and the few values configured clear (audit-context.ts).
 */

export type AuditDecision = "allow" | "deny" | "error";

/** An event as produced by the service, before the store numbers and chains it. */
export interface AuditEventInput {
  /** RFC 3339 UTC with milliseconds. */
  time: string;
  principal: string;
  operation: string;
  decision: AuditDecision;
  reason?: string;
  key?: string;
  keyVersion?: number;
  purpose?: string;
  /** The context's entries except the clear ones, each value replaced by its keyed HMAC (b64u). */
  context?: Record<string, string>;
  /** The context's entries whose keys are configured clear (institution, department), as given. */
  clearContext?: Record<string, string>;
  custodian?: string;
  requestId?: string;
  /** The policy rule that decided the request (`grant:<id>`, `break-glass`, `default-deny`, …). */
  rule?: string;
  /** Set (true) on every event of a break-glass use, which a reviewer must close. */
  breakGlass?: boolean;
}

/** An event as stored: numbered and chained. */
export interface AuditEvent extends AuditEventInput {
  seq: number;
}

/** A stored event with its chain hash, as read back for verification. */
export interface ChainedAuditEvent {
  event: AuditEvent;
  /** Canonical JSON of `event`, exactly the bytes that were hashed. */
  canonical: string;
  /** hash_n (hex). */
  hash: string;
}
