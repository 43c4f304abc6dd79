/**
 * Turns what happened into audit events and makes them durable before the
 * caller hears back. Context values are replaced by keyed HMACs under the
 * audit key (docs/FORMATS.md §8), except those of the keys configured clear
 * (audit-context.ts), so the log can be searched by patient without holding
 * PHI; the audit key exists only while custos is unsealed, and no
 * context-bearing operation runs while sealed. A store that cannot make an
 * event durable turns into a 503 `audit_unavailable`: no audit record, no
 * operation.
 */
import { createHmac } from "node:crypto";
import type { Logger } from "pino";
import type { Secret } from "../crypto/secret.js";
import { auditUnavailableError, CustosError } from "../errors.js";
import { type Store, StoreConflictError, StoreUnavailableError } from "../store/store.js";
import {
  type AuditContextConfig,
  contextHmac,
  DEFAULT_AUDIT_CONTEXT,
  type EventContext,
  eventContext,
} from "./audit-context.js";
import type { AuditEventInput } from "./event.js";

export type EventFields = Omit<AuditEventInput, "time">;

/** What the policy decision adds to a request's events. */
export interface RequestAnnotation {
  rule: string;
  breakGlass?: boolean;
}

export class Auditor {
  #contextKey: Secret | null = null;
  #eventfulRequests = new Set<string>();
  #annotations = new Map<string, RequestAnnotation>();

  constructor(
    private readonly store: Store,
    /** The operator log: refusals and errors are told there too (never context values). */
    private readonly log?: Pick<Logger, "warn">,
    private readonly now: () => Date = () => new Date(),
    /** Which context keys are identifying and which are stored clear; checked by auditContextConfig. */
    private readonly contextConfig: AuditContextConfig = DEFAULT_AUDIT_CONTEXT,
  ) {}

  /** Installs (on unseal) or removes (on seal) the key that HMACs context values. */
  setContextKey(key: Secret | null): void {
    this.#contextKey?.dispose();
    this.#contextKey = key;
  }

  event(fields: EventFields): AuditEventInput {
    // Copy only the fields that are set (absent fields are omitted from the
    // chain, never null); building the object once avoids `delete`, which
    // turns V8 objects into slow dictionaries on the hot path.
    const out = { time: this.now().toISOString() } as AuditEventInput;
    const target = out as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) target[k] = v;
    if (out.requestId !== undefined) {
      this.#eventfulRequests.add(out.requestId);
      const note = this.#annotations.get(out.requestId);
      if (note !== undefined) {
        out.rule ??= note.rule;
        if (note.breakGlass) out.breakGlass = true;
      }
    }
    return out;
  }

  /**
   * Marks every later event of the request with the policy decision that let
   * it through (the envelope and key-ring events are made far from the
   * gate that decided); forgotten by `endRequest`.
   */
  annotate(requestId: string, note: RequestAnnotation): void {
    this.#annotations.set(requestId, note);
  }

  /** Forgets a finished request: whether it had an event, and its annotation. */
  endRequest(requestId: string): void {
    this.#eventfulRequests.delete(requestId);
    this.#annotations.delete(requestId);
  }

  /**
   * Whether an event was made for this request (and forgets it). The HTTP
   * layer audits a request that ended without one — refused input, unknown
   * route — so that every request leaves a trace.
   */
  takeRequest(requestId: string): boolean {
    return this.#eventfulRequests.delete(requestId);
  }

  /**
   * The event's `context` (keyed HMACs) and `clearContext` (the configured
   * clear keys' values); without the audit key (sealed) the values to HMAC
   * are dropped, never stored clear.
   */
  eventContext(context: Record<string, string> | undefined): EventContext {
    return eventContext(this.contextConfig, this.#contextKey?.reveal() ?? null, context);
  }

  /**
   * b64u HMAC-SHA256 under the audit key of `label ‖ 0x00 ‖ data`: binds a
   * value that carries patient data (an approval's body) without letting
   * whoever sees the binding guess the value; null while sealed.
   */
  keyedDigest(label: string, data: string): string | null {
    if (this.#contextKey === null) return null;
    return createHmac("sha256", this.#contextKey.reveal())
      .update(label, "utf8")
      .update(Buffer.of(0))
      .update(data, "utf8")
      .digest("base64url");
  }

  /**
   * The keyed HMACs under which `value` would be stored as any of the
   * configured identifying context keys (patient id, MRN, record id by
   * default): what a search for one patient's events looks up. Needs the audit key, so only while unsealed.
   */
  subjectHmacs(value: string): string[] {
    if (this.#contextKey === null) {
      throw new CustosError(
        503,
        "sealed",
        "searching by patient needs the audit key: custos must be unsealed",
      );
    }
    const key = this.#contextKey.reveal();
    return this.contextConfig.identifying.map((k) => contextHmac(key, k, value));
  }

  /** Appends events that record no state change; fails closed. */
  async record(...events: AuditEventInput[]): Promise<void> {
    await durably(() => this.store.appendAudit(events));
    for (const e of events) {
      if (e.decision !== "allow") {
        this.log?.warn(
          {
            principal: e.principal,
            operation: e.operation,
            key: e.key,
            keyVersion: e.keyVersion,
            custodian: e.custodian,
            reason: e.reason,
            requestId: e.requestId,
          },
          `${e.operation} ${e.decision === "deny" ? "refused" : "failed"}`,
        );
      }
    }
  }
}

/**
 * Runs a store write and translates storage failures into the service's
 * errors: unavailable storage is a 503 (nothing was written), a conflict a 409.
 */
export async function durably<T>(write: () => Promise<T>, conflictMessage?: string): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (err instanceof StoreUnavailableError) throw auditUnavailableError();
    if (err instanceof StoreConflictError) {
      throw new CustosError(409, "conflict", conflictMessage ?? err.message);
    }
    throw err;
  }
}
