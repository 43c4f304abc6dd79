/**
 * Four eyes (dynamic separation of duty) over the policy's `approvals`
 * rules: a principal whom a grant allows an operation that a rule governs
 * requests it with its exact parameters; eligible principals approve or
 * deny; the requester executes it once, with exactly those parameters,
 * before it expires. The policy decides everything through `decide()` —
 * this module only stores, refuses and audits. The identity is the policy
 * principal: a `cst_` token, a JWT and a client certificate that resolve to
 * the same principal name are the same person, so the requester can never
 * approve through a second credential. Who may vote is src/approvals/
 * vote-rules.ts, which mirrors `countApprovals`, so every approval stored
 * counts; the execution still re-decides with the policy in force then, and
 * weighs each vote by what its voter is now under that policy, not by the
 * roles recorded when they voted. A vote or an execution names the
 * parameters' digest the caller saw (`paramsHash`): a request can only be
 * approved or run by someone who read it, and never by a bare form post.
 * Bodies of key-use operations are bound by a keyed MAC and shown only as
 * their HMAC'd context (src/approvals/binding.ts): no patient data reaches
 * approvers, the audit or the operator log through an approval.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { type Auditor, durably } from "../audit/auditor.js";
import { KEY_NAME_RE } from "../crypto/envelope.js";
import { CustosError } from "../errors.js";
import type { Decision, Principal } from "../policy/authorizer.js";
import { approvalRuleFor, countApprovals, decide } from "../policy/decide.js";
import { type ApprovalRule, durationMs, isKeyOperation, type PolicyOperation } from "../policy/document.js";
import type { PolicyEngine } from "../policy/engine.js";
import type { ApprovalRecord, Store } from "../store/store.js";
import {
  type BoundParameters,
  bindParameters,
  bodyIsProtected,
  documentDigest,
  isCurrentFormat,
} from "./binding.js";
import {
  decisionRefusal,
  digestRefusal,
  endedRefusal,
  formatRefusal,
  parametersRefusal,
  type Refusal,
} from "./request-checks.js";
import { standingVotes, voteRefusal } from "./vote-rules.js";

export type ApprovalStatus = "pending" | "approved" | "denied" | "executed" | "expired";

export interface ApprovalView extends Omit<ApprovalRecord, "params" | "state"> {
  status: ApprovalStatus;
  parameters: Record<string, unknown>;
  /** Approvals that count now under the policy in force. */
  counted: number;
}

export interface RequestInput {
  operation: PolicyOperation;
  key?: string;
  purpose: string;
  digest?: string;
  body?: Record<string, unknown>;
  reason?: string;
}

/** The caller as the policy knows it; approvals need an organisation. */
type Known = Principal & { organisation: string };

export class ApprovalService {
  constructor(
    private readonly store: Store,
    private readonly auditor: Auditor,
    private readonly engine: PolicyEngine,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** The digest of the policy file on disk now: what a reload would load. */
  policyFileDigest(): string {
    try {
      return documentDigest(readFileSync(this.engine.file));
    } catch (err) {
      throw new CustosError(
        409,
        "policy_unreadable",
        `cannot read ${this.engine.file}: ${(err as Error).message}`,
      );
    }
  }

  async request(who: Principal, input: RequestInput, requestId: string): Promise<ApprovalView> {
    const principal = known(who);
    const policy = this.engine.policy;
    if (input.key !== undefined && !KEY_NAME_RE.test(input.key)) {
      throw new CustosError(400, "invalid_request", `key: '${input.key}' is not a key name`);
    }
    if (isKeyOperation(input.operation) !== (input.key !== undefined)) {
      const need = input.key === undefined ? "needs a key" : "takes no key";
      throw new CustosError(400, "invalid_request", `key: ${input.operation} ${need}`);
    }
    const params: BoundParameters = { operation: input.operation, purpose: input.purpose };
    if (input.key !== undefined) params.key = input.key;
    if (input.operation === "policy-change") params.digest = input.digest ?? this.policyFileDigest();
    else if (input.digest !== undefined) {
      throw new CustosError(400, "invalid_request", "digest: only a policy-change binds a document digest");
    }
    if (input.body !== undefined) params.body = input.body;
    const binding = bindParameters(params, this.auditor);
    const d = decide(policy, {
      principal: { id: principal.id, organisation: principal.organisation, roles: principal.roles },
      operation: input.operation,
      ...(input.key !== undefined && { key: input.key }),
      purpose: input.purpose,
      context: stringEntries(input.body?.context),
    });
    const at = this.now();
    const base = { principal: principal.id, key: input.key, requestId, operation: "approvals.request" };
    if (d.decision !== "needs-approval") {
      await this.#refuse(
        base,
        d.decision === "deny"
          ? {
              status: 403,
              code: "forbidden",
              rule: d.rule,
              message: `principal '${principal.id}' may not ${input.operation}: ${d.reason}`,
            }
          : {
              status: 409,
              code: "approval_not_needed",
              rule: d.rule,
              message: `${input.operation} needs no approval: ${d.reason}; just do it`,
            },
      );
    }
    // Only now, for a caller the policy would let do it: whether the key exists is not everyone's to learn.
    if (
      input.key !== undefined &&
      input.operation !== "create" &&
      (await this.store.getKey(input.key)) === null
    ) {
      throw new CustosError(404, "not_found", `no key '${input.key}'`);
    }
    const rule = approvalRuleFor(policy, input.operation, input.key, principal.organisation) as ApprovalRule;
    const record: ApprovalRecord = {
      id: randomUUID(),
      operation: input.operation,
      key: input.key ?? null,
      ...binding,
      purpose: input.purpose,
      requester: principal.id,
      organisation: principal.organisation,
      rule: rule.id,
      required: rule.required,
      reason: input.reason ?? null,
      createdAt: at.toISOString(),
      expiresAt: new Date(at.getTime() + durationMs(rule.expiresAfter)).toISOString(),
      state: "pending",
      approvals: [],
      deniedBy: null,
      deniedAt: null,
      note: null,
      executedBy: null,
      executedAt: null,
      executionRequestId: null,
    };
    await durably(() =>
      this.store.putApproval(
        record,
        this.auditor.event({
          ...base,
          decision: "allow",
          purpose: input.purpose,
          rule: `approval:${rule.id}`,
          reason: `approval ${record.id} requested: ${describe(record)}; needs ${rule.required} approval(s) by ${record.expiresAt}`,
        }),
      ),
    );
    return this.view(record);
  }

  async get(id: string): Promise<ApprovalRecord> {
    const record = await this.store.getApproval(id);
    if (record === null) throw new CustosError(404, "not_found", `no approval request ${id}`);
    return record;
  }

  async list(status?: ApprovalStatus): Promise<ApprovalView[]> {
    const stored = status === "denied" || status === "executed" ? status : status ? "pending" : undefined;
    const all = await this.store.listApprovals(stored ? { state: stored } : {});
    const views = all.map((r) => this.view(r));
    return status ? views.filter((v) => v.status === status) : views;
  }

  view(record: ApprovalRecord): ApprovalView {
    const { params, state, ...rest } = record;
    const now = this.now().getTime();
    const counted = this.#counted(record, now);
    let status: ApprovalStatus = state;
    if (state === "pending") {
      if (now >= Date.parse(record.expiresAt)) status = "expired";
      else if (counted >= record.required) status = "approved";
    }
    const parameters = JSON.parse(params) as Record<string, unknown>;
    // Format 1 kept a key-use body in the clear: it is never shown again.
    if (!isCurrentFormat(parameters) && bodyIsProtected(record.operation) && "body" in parameters) {
      parameters.body = "withheld: recorded in approval format 1; request the approval again";
    }
    return { ...rest, status, parameters, counted };
  }

  /**
   * Approve (`approve: true`) or deny: eligible principals only, never the
   * requester under any credential, and only for the parameters' digest
   * the voter was shown.
   */
  async vote(
    who: Principal,
    id: string,
    approve: boolean,
    note: string | undefined,
    requestId: string,
    seen: string,
  ) {
    const principal = known(who);
    const record = await this.get(id);
    const operation = approve ? "approvals.approve" : "approvals.deny";
    const base = { principal: principal.id, key: record.key ?? undefined, requestId, operation };
    const refusal =
      endedRefusal(record, this.now().getTime()) ??
      digestRefusal(record, seen) ??
      voteRefusal(this.engine.policy, record, principal, approve);
    if (refusal) await this.#refuse(base, refusal);
    const at = this.now().toISOString();
    const event = this.auditor.event({
      ...base,
      decision: "allow",
      purpose: record.purpose,
      rule: `approval:${record.rule}`,
      reason: `approval ${id} (${describe(record)}) ${approve ? "approved" : "denied"} by ${principal.id} of ${principal.organisation}${note ? `: ${note}` : ""}`,
    });
    if (approve) {
      const v = {
        principal: principal.id,
        organisation: principal.organisation,
        roles: [...principal.roles],
      };
      await durably(
        () =>
          this.store.approveApproval(
            id,
            { ...v, via: principal.via ?? "token", at, note: note ?? null },
            event,
          ),
        `approval ${id} could not take the approval (approved or ended meanwhile)`,
      );
    } else {
      await durably(
        () => this.store.denyApproval(id, { by: principal.id, at, note: note ?? "denied" }, event),
        `approval ${id} could not be denied (ended meanwhile)`,
      );
    }
    return this.view(await this.get(id));
  }

  /**
   * Spends an approval on a request whose parameters are `actual`: the
   * caller is the requester, the hashes match, the policy in force allows
   * the operation with the approvals given, and the store consumes it
   * atomically (a second, racing execution gets 409). Returns the decision.
   * `seen` is the digest the requester names (`POST …/execute`); on an
   * operation's own route the parameters themselves are the proof.
   */
  async consume(
    who: Principal,
    id: string,
    actual: BoundParameters,
    requestId: string,
    context?: Readonly<Record<string, string>>,
    seen?: string,
  ): Promise<{ record: ApprovalRecord; decision: Decision }> {
    const principal = known(who);
    const record = await this.get(id);
    const base = { principal: principal.id, key: actual.key, requestId, operation: "approvals.execute" };
    const refuse = (r: Refusal | null) => (r ? this.#refuse(base, r, { approval: id }) : undefined);
    await refuse(endedRefusal(record, this.now().getTime()));
    if (principal.id !== record.requester) {
      await refuse({
        status: 403,
        code: "not_requester",
        rule: "approval:not-requester",
        message: `only ${record.requester}, who requested ${id}, executes it`,
      });
    }
    await refuse(digestRefusal(record, seen) ?? formatRefusal(record));
    const { params, paramsHash } = bindParameters(actual, this.auditor);
    await refuse(parametersRefusal(record, params, paramsHash));
    const now = this.now();
    const votes = standingVotes(this.engine.policy, record);
    const d = decide(this.engine.policy, {
      principal: { id: principal.id, organisation: principal.organisation, roles: principal.roles },
      operation: record.operation as PolicyOperation,
      ...(record.key !== null && { key: record.key }),
      purpose: record.purpose,
      ...(context !== undefined && { context }),
      approvals: votes.given,
      now: now.getTime(),
    });
    await refuse(decisionRefusal(record, d, this.#counted(record, now.getTime()), votes.lapsed));
    const approvers = record.approvals.map((v) => `${v.principal} (${v.organisation})`).join(", ");
    await durably(
      () =>
        this.store.consumeApproval(
          id,
          { by: principal.id, at: now.toISOString(), paramsHash, requestId },
          this.auditor.event({
            ...base,
            decision: "allow",
            purpose: record.purpose,
            rule: d.rule,
            reason: `approval ${id} executed: ${describe(record)}, approved by ${approvers}`,
          }),
        ),
      `approval ${id} was executed already (it runs once)`,
    );
    this.auditor.annotate(requestId, { rule: d.rule });
    return { record, decision: { allow: true, rule: d.rule, reason: d.reason } };
  }

  #counted(record: ApprovalRecord, now: number): number {
    const rule = this.engine.policy.approvals.find((a) => a.id === record.rule);
    if (!rule || record.state !== "pending" || now >= Date.parse(record.expiresAt)) return 0;
    return countApprovals(this.engine.policy, rule, {
      principal: { id: record.requester, organisation: record.organisation, roles: [] },
      operation: record.operation as PolicyOperation,
      purpose: record.purpose,
      approvals: standingVotes(this.engine.policy, record).given,
      now,
    });
  }

  /** Audits a refusal, then throws it. */
  async #refuse(
    base: { principal: string; key?: string | undefined; requestId: string; operation: string },
    r: Refusal,
    details: Record<string, unknown> = {},
  ): Promise<never> {
    await this.auditor.record(
      this.auditor.event({ ...base, decision: "deny", rule: r.rule, reason: r.message }),
    );
    throw new CustosError(r.status, r.code, r.message, { rule: r.rule, ...details });
  }
}

function known(who: Principal): Known {
  if (who.organisation === undefined) {
    throw new CustosError(403, "forbidden", `${who.id} is not a principal of the policy`, {
      rule: "identity:undeclared",
    });
  }
  return who as Known;
}

function describe(r: ApprovalRecord): string {
  return `${r.operation}${r.key ? ` ${r.key}` : ""} for ${r.purpose} by ${r.requester} (sha256:${r.paramsHash.slice(0, 16)}…)`;
}

function stringEntries(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) return out;
  for (const [k, v] of Object.entries(value)) if (typeof v === "string") out[k] = v;
  return out;
}
