/**
 * Redeeming an approval on the operation's own route: when the policy says
 * a request needs approvals and it carries `X-Approval-Id`, the gate binds
 * the request's actual parameters (operation, key, purpose, the JSON body
 * the gate read, and for a policy change the digest of the document on
 * disk) exactly as the approval bound them at request time, and lets the approvals service spend
 * the approval — which refuses another principal, other parameters, too few
 * approvals, an expired or already executed approval. The spent approval is
 * left on the context for routes that must hold on to what was approved
 * (the policy reload loads only the approved document).
 */
import type { Context } from "hono";
import type { BoundParameters } from "../approvals/binding.js";
import type { ApprovalService } from "../approvals/service.js";
import { CustosError } from "../errors.js";
import type { Decision, Operation, Principal } from "../policy/authorizer.js";
import { POLICY_OPERATION } from "../policy/engine.js";

declare module "hono" {
  interface ContextVariableMap {
    /** The approval this request spent, and the policy digest it bound. */
    approved: { id: string; digest?: string };
  }
}

export const APPROVAL_HEADER = "x-approval-id";
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface RedeemRequest {
  principal: Principal;
  operation: Operation;
  key?: string | undefined;
  purpose?: string | undefined;
  context?: Readonly<Record<string, string>> | undefined;
  /** The request's JSON body, if it has one. */
  body?: Record<string, unknown> | undefined;
}

/** The policy operation an API operation is approved as, or null if approvals cannot cover it. */
export function approvableOperation(operation: Operation) {
  return POLICY_OPERATION[operation];
}

export async function redeemApproval(
  c: Context,
  service: ApprovalService,
  id: string,
  r: RedeemRequest,
): Promise<Decision> {
  if (!UUID_RE.test(id)) {
    throw new CustosError(
      400,
      "invalid_request",
      `${APPROVAL_HEADER}: '${id.slice(0, 64)}' is not an approval id`,
    );
  }
  const operation = approvableOperation(r.operation);
  if (operation === null || r.purpose === undefined) {
    throw new CustosError(400, "invalid_request", `${r.operation} cannot be run under an approval`);
  }
  const params: BoundParameters = { operation, purpose: r.purpose };
  if (r.key !== undefined) params.key = r.key;
  if (operation === "policy-change") params.digest = service.policyFileDigest();
  if (r.body !== undefined) params.body = r.body;
  const { decision } = await service.consume(r.principal, id, params, c.get("requestId"), r.context);
  c.set("approved", { id, ...(params.digest !== undefined && { digest: params.digest }) });
  return decision;
}
