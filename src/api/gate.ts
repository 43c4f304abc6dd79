/**
 * The gate every protected route passes before its handler runs: sealed
 * check, authentication (a `cst_` token, a bearer JWT, or a verified client
 * certificate; src/api/authenticate.ts), then the authoriser's decision.
 * Each refusal of an identified caller is audited (fail-closed: a refusal
 * that cannot be audited is a 503) and answered with a JSON error naming the
 * rule; those of callers not identified (sealed, no or a bad credential) are
 * counted per source by the HTTP layer (api/anonymous.ts); an allowed caller
 * continues with its principal on the context. With a policy the decision
 * needs the purpose of use and the encryption context: key-use routes carry
 * them in their JSON body, which the gate reads (hono caches it for the
 * validator), other routes name the purpose in `X-Purpose-Of-Use`. The rule
 * that allowed the request marks every audit event the request makes, and
 * a break-glass use opens a review before the key is touched. A request the
 * policy lets run only with approvals is refused with `approval_required`
 * (naming the request to make), unless it carries `X-Approval-Id` and the
 * approval, spent on its exact parameters, makes it allowed
 * (src/api/approval-redeem.ts).
 */
import { createMiddleware } from "hono/factory";
import type { ApprovalService } from "../approvals/service.js";
import type { Auditor } from "../audit/auditor.js";
import { type SealManager, sealedOrUninitialised } from "../custody/seal.js";
import { CustosError } from "../errors.js";
import { isPurposeOfUse } from "../keys/purpose.js";
import type { Authorizer, Decision, Operation, Principal } from "../policy/authorizer.js";
import { POLICY_OPERATION } from "../policy/engine.js";
import type { Store } from "../store/store.js";
import { APPROVAL_HEADER, redeemApproval } from "./approval-redeem.js";
import { Authenticator } from "./authenticate.js";
import { openReview } from "./break-glass.js";
import type { JwtVerifier } from "./jwt.js";

declare module "hono" {
  interface ContextVariableMap {
    principal: Principal;
    requestId: string;
    decision: Decision;
    /** Set by the gate when the request's credential did not authenticate. */
    unauthenticated: boolean;
  }
}

export const PURPOSE_HEADER = "x-purpose-of-use";

export interface GateDeps {
  store: Store;
  seal: SealManager;
  auditor: Auditor;
  authorizer: Authorizer;
  /** Bearer JWTs, verified against configured keys; their claims are mapped by the policy. */
  jwt?: JwtVerifier | null;
  /** Whether the listener verifies client certificates (mutual TLS). */
  clientCerts?: boolean;
  /** Four-eyes approvals (with a policy): requests carrying X-Approval-Id spend one. */
  approvals?: ApprovalService | null;
}

export interface GateOptions {
  needsUnsealed?: boolean;
  /** The purpose of use and context come from the JSON body (key-use routes). */
  useBody?: boolean;
  /** The key is named by the body's `name` (creating a key), not by the path. */
  keyFromBody?: boolean;
  /**
   * The finer operations read from the JSON body, one per field's effect
   * (PATCH with `enabled: false` is keys.disable, its other fields
   * keys.update): every one must be allowed, or nothing runs.
   */
  refine?: (body: Readonly<Record<string, unknown>>) => Operation | readonly Operation[];
}

/** The body as an object, for the decision only; the route's validator still checks it fully. */
async function jsonBody(c: Parameters<Parameters<typeof createMiddleware>[0]>[0]) {
  if (!/^application\/([\w.-]+\+)?json\b/i.test(c.req.header("content-type") ?? "")) {
    throw new CustosError(415, "unsupported_media_type", "send the body as Content-Type: application/json");
  }
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new CustosError(400, "invalid_json", "the request body is not valid JSON");
  }
  return typeof body === "object" && body !== null && !Array.isArray(body)
    ? (body as Record<string, unknown>)
    : {};
}

/** Context entries that are strings; anything else fails conditions (and the validator). */
function stringEntries(value: unknown): Record<string, string> | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === "string") out[k] = v;
  return out;
}

export function gateFactory(deps: GateDeps) {
  const { seal, auditor, authorizer, store } = deps;
  const authenticator = new Authenticator(store, authorizer, deps.jwt ?? null, deps.clientCerts ?? false);
  return function gate(operation: Operation, opts: GateOptions = {}) {
    const needsUnsealed = opts.needsUnsealed ?? true;
    return createMiddleware(async function gateMiddleware(c, next) {
      let key = c.req.param("name");
      const requestId = c.get("requestId");
      let op = operation;
      let ops: readonly Operation[] = [operation];
      let purpose: string | undefined;
      const refuse = async (
        principal: string,
        reason: string,
        error: CustosError,
        rule?: string,
      ): Promise<never> => {
        await auditor.record(
          auditor.event({
            principal,
            operation: op,
            decision: "deny",
            reason,
            key,
            requestId,
            rule,
            purpose: purpose !== undefined && isPurposeOfUse(purpose) ? purpose : undefined,
          }),
        );
        throw error;
      };
      // Refusals of callers not yet identified are counted per source by the
      // HTTP layer (api/anonymous.ts), not written one event each.
      if (needsUnsealed && seal.sealed) throw sealedOrUninitialised(seal.initialized);
      const who = await authenticator.authenticate(c);
      if (!who.ok) {
        const error = new CustosError(
          who.status,
          who.code,
          who.message,
          who.rule ? { rule: who.rule } : undefined,
        );
        if (who.principal === undefined) {
          c.set("unauthenticated", true);
          throw error;
        }
        return refuse(who.principal, who.reason, error, who.rule);
      }
      const principal = who.principal;
      let context: Record<string, string> | undefined;
      if (authorizer.usesPurpose) {
        if (opts.useBody || opts.refine || opts.keyFromBody) {
          const body = await jsonBody(c);
          if (opts.keyFromBody && typeof body.name === "string") key = body.name;
          if (opts.useBody) {
            purpose = typeof body.purpose === "string" ? body.purpose : undefined;
            context = stringEntries(body.context) ?? {};
          }
          if (opts.refine) ops = [opts.refine(body)].flat();
        }
        if (!opts.useBody) purpose = c.req.header(PURPOSE_HEADER);
      }
      // Each operation the request performs is decided; an outright refusal is answered before an approval is spent.
      const decided = ops.map((o) => ({
        o,
        d: authorizer.decide({ principal, operation: o, key, purpose, context }),
      }));
      const refused = decided.filter((x) => !x.d.allow);
      const first = refused.find((x) => !x.d.needsApproval) ?? refused[0] ?? decided[0];
      op = first?.o ?? op;
      let decision = first?.d ?? authorizer.decide({ principal, operation: op, key, purpose, context });
      const approvalId = c.req.header(APPROVAL_HEADER);
      if (decision.needsApproval && refused.length === 1 && approvalId !== undefined && deps.approvals) {
        decision = await redeemApproval(c, deps.approvals, approvalId, {
          principal,
          operation: op,
          key,
          purpose,
          context,
          // Bound too: a request whose body differs from the approved one is another request.
          body: c.req.header("content-type") !== undefined ? await jsonBody(c) : undefined,
        });
      }
      if (!decision.allow) {
        const request = { operation: POLICY_OPERATION[op], ...(key !== undefined && { key }), purpose };
        const error = decision.needsApproval
          ? new CustosError(
              403,
              "approval_required",
              `${op} needs approvals under the policy: ${decision.reason}; request them with POST /v1/approvals ${JSON.stringify(request)} (custos approvals request), then repeat this request with the header X-Approval-Id: <id> once approved, or run POST /v1/approvals/<id>/execute`,
              { rule: decision.rule, approvalRequest: JSON.stringify(request) },
            )
          : new CustosError(
              403,
              "forbidden",
              `principal '${principal.id}' may not ${op}: ${decision.reason}`,
              {
                rule: decision.rule,
              },
            );
        return refuse(principal.id, `${decision.rule}: ${decision.reason}`, error, decision.rule);
      }
      c.set("principal", principal);
      c.set("decision", decision);
      if (authorizer.usesPurpose) {
        auditor.annotate(requestId, { rule: decision.rule, ...(decision.review && { breakGlass: true }) });
      }
      if (decision.review) {
        await openReview(store, auditor, {
          requestId,
          principal,
          operation: op,
          key: key ?? null,
          purpose: purpose ?? "ETREAT",
          decision,
        });
      }
      await next();
    });
  };
}

export type Gate = ReturnType<typeof gateFactory>;
