/**
 * `POST /v1/sys/policy/reload`: re-reads the policy file the server was
 * started with. The route is itself governed by the policy (operation
 * `policy-change`): the gate refuses it with `approval_required` when the
 * policy asks for approvals — then an approval bound to the document's
 * digest (`X-Approval-Id`) lets exactly that document in — and a document
 * that fails validation or lint is refused with 422 while the running
 * policy stays. Without `--policy` there is nothing to reload (409).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { CustosError } from "../../errors.js";
import type { AppDeps } from "../app.js";
import type { Gate } from "../gate.js";
import { reloadPolicy } from "../policy-reload.js";
import { ErrorSchema } from "../schemas.js";
import { json } from "./responses.js";

const Reloaded = z
  .object({ file: z.string(), digest: z.string(), previous: z.string() })
  .openapi("PolicyReloaded");

export function policyRoutes(app: OpenAPIHono, { policy, auditor, log }: AppDeps, gate: Gate): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sys/policy/reload",
      tags: ["sys"],
      summary: "Reload the policy file; a document with errors is refused and the running policy stays",
      security: [{ bearer: [] }],
      middleware: [gate("sys.policy.reload", { needsUnsealed: false })] as const,
      responses: {
        200: json(Reloaded, "The new policy is in force"),
        401: json(ErrorSchema, "No valid credential"),
        403: json(ErrorSchema, "Not allowed, or approvals required (approval_required)"),
        409: json(ErrorSchema, "The server runs without a policy"),
        422: json(ErrorSchema, "The document was refused; the running policy stays"),
      },
    }),
    async (c) => {
      if (!policy)
        throw new CustosError(409, "no_policy", "this server runs without --policy: nothing to reload");
      const result = await reloadPolicy(
        policy,
        auditor,
        { principal: c.get("principal").id, requestId: c.get("requestId"), rule: c.get("decision").rule },
        log,
        c.get("approved")?.digest,
      );
      if (!result.ok) {
        throw new CustosError(422, "policy_refused", `${result.message}\nthe running policy stays in force`, {
          digest: result.digest,
        });
      }
      return c.json({ file: result.file, digest: result.digest, previous: result.previous }, 200);
    },
  );
}
