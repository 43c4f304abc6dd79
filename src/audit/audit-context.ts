/**
 * What of a request's encryption context goes into its audit event
 * (docs/FORMATS.md §8). The configuration names two sets of context keys:
 * **identifying** keys (patient id, MRN, record id by default), whose values
 * are stored only as keyed HMACs under the audit key and are where a search
 * by patient looks; and **clear** keys (institution, department by default),
 * whose values are stored as given so reports can show whose record it was.
 * Every other key is HMAC'd too. The design choice is that leaving a value
 * in the clear is the exception an operator asks for by name: a key nobody
 * thought about ("dob", "name", "ssn", "Patient") may carry PHI, and PHI in a
 * permanent, replicated log is the failure to avoid, while an over-hashed
 * value costs only readability. For the same reason a key whose name looks
 * identifying cannot be configured clear, and no key can be in both sets.
 */
import { createHmac } from "node:crypto";
import { CONTEXT_KEY_RE } from "../crypto/context.js";

export const DEFAULT_IDENTIFYING_CONTEXT_KEYS: readonly string[] = [
  "patient",
  "patientId",
  "mrn",
  "record",
  "recordId",
];
export const DEFAULT_CLEAR_CONTEXT_KEYS: readonly string[] = ["institution", "department"];

/**
 * Names that suggest a person or a record (HIPAA's identifiers, roughly),
 * matched in the key lowercased with separators removed. Such a key stays
 * HMAC'd whatever the configuration says.
 */
const LOOKS_IDENTIFYING_RE =
  /patient|mrn|record|subject|person|name|birth|dob|ssn|social|address|phone|fax|email|mail|encounter|visit|account|member|insur|benefic|license|licence|device|serial|biometric|photo|ip$|url/;

export interface AuditContextConfig {
  /** Keys whose values identify a patient or record: HMAC'd, and searched by `--patient`. */
  identifying: readonly string[];
  /** Keys whose values are stored in the clear. */
  clear: readonly string[];
}

export const DEFAULT_AUDIT_CONTEXT: AuditContextConfig = {
  identifying: DEFAULT_IDENTIFYING_CONTEXT_KEYS,
  clear: DEFAULT_CLEAR_CONTEXT_KEYS,
};

/** Checks a configuration (each list defaults separately) and returns it frozen. */
export function auditContextConfig(given: Partial<AuditContextConfig> = {}): AuditContextConfig {
  const identifying = [...(given.identifying ?? DEFAULT_IDENTIFYING_CONTEXT_KEYS)];
  const clear = [...(given.clear ?? DEFAULT_CLEAR_CONTEXT_KEYS)];
  if (identifying.length === 0) {
    throw new RangeError("identifying context keys: give at least one (a search by patient looks there)");
  }
  for (const [list, what] of [
    [identifying, "identifying"],
    [clear, "clear"],
  ] as const) {
    for (const k of list) {
      if (typeof k !== "string" || !CONTEXT_KEY_RE.test(k)) {
        throw new RangeError(`${what} context key ${JSON.stringify(k)} must match ${CONTEXT_KEY_RE.source}`);
      }
    }
  }
  for (const k of clear) {
    if (identifying.includes(k)) {
      throw new RangeError(`context key '${k}' cannot be both identifying and clear`);
    }
    if (looksIdentifying(k)) {
      throw new RangeError(
        `context key '${k}' looks identifying and cannot be stored in the clear; leave it out of the clear keys (it is then HMAC'd)`,
      );
    }
  }
  return Object.freeze({ identifying: Object.freeze(identifying), clear: Object.freeze(clear) });
}

export function looksIdentifying(key: string): boolean {
  return LOOKS_IDENTIFYING_RE.test(key.toLowerCase().replace(/[._:-]/g, ""));
}

/** b64u(HMAC(auditKey, "custos/audit-context/v1" ‖ u32(len k) ‖ k ‖ value)) — docs/FORMATS.md §8. */
export function contextHmac(key: Uint8Array, name: string, value: string): string {
  const label = Buffer.from(name, "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32BE(label.length);
  return createHmac("sha256", key)
    .update("custos/audit-context/v1")
    .update(len)
    .update(label)
    .update(value, "utf8")
    .digest("base64url");
}

export interface EventContext {
  /** Every value not configured clear, as its keyed HMAC. */
  context?: Record<string, string>;
  /** The values of the configured clear keys, as given. */
  clearContext?: Record<string, string>;
}

/**
 * Splits a request's context for its event. `context` is there whenever the
 * audit key is (empty if every value is clear), as before clear keys existed;
 * without the key (sealed) the values that would be HMAC'd are dropped, never
 * stored clear.
 */
export function eventContext(
  config: AuditContextConfig,
  auditKey: Uint8Array | null,
  context: Record<string, string> | undefined,
): EventContext {
  if (context === undefined) return {};
  const hashed: Record<string, string> = {};
  const clear: Record<string, string> = {};
  for (const [k, v] of Object.entries(context)) {
    if (config.clear.includes(k)) clear[k] = v;
    else if (auditKey !== null) hashed[k] = contextHmac(auditKey, k, v);
  }
  const out: EventContext = {};
  if (auditKey !== null) out.context = hashed;
  if (Object.keys(clear).length > 0) out.clearContext = clear;
  return out;
}
