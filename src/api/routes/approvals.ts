/**
 * The approvals API (four eyes): request an operation with its exact
 * parameters, list and read requests, approve or deny them, and execute an
 * approved one. The gate only authenticates these routes (operation
 * `approvals.*`); the approvals service decides each step by the policy's
 * approval rules and audits it. An approved request runs once: here with
 * `POST /v1/approvals/{id}/execute` (key destruction, policy change), or on
 * the operation's own route with `X-Approval-Id` (src/api/approval-redeem.ts),
 * which is how operations with a request body (rekey) are run. An execution
 * that would fail anyway (sealed node, key gone or already scheduled) is
 * refused before the approval is spent; one that fails after it was spent
 * leaves it spent. Approving, denying and executing take a JSON body
 * naming the approval and the digest of its parameters as read (`{id,
 * digest}`): no vote or execution without having read what it is for, and
 * none from a cross-origin form (src/api/browser-guard.ts). Without a
 * policy there are no approval rules: every route answers 409 `no_policy`.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { BoundParameters } from "../../approvals/binding.js";
import type { ApprovalService } from "../../approvals/service.js";
import { KEY_NAME_RE } from "../../crypto/envelope.js";
import { sealedOrUninitialised } from "../../custody/seal.js";
import { CustosError } from "../../errors.js";
import { OPERATIONS } from "../../policy/document.js";
import type { AppDeps } from "../app.js";
import { jsonOnly } from "../browser-guard.js";
import type { Gate } from "../gate.js";
import { reloadPolicy } from "../policy-reload.js";
import { ErrorSchema } from "../schemas.js";
import { json } from "./responses.js";

const STATUSES = ["pending", "approved", "denied", "executed", "expired"] as const;

const Vote = z.object({
  principal: z.string(),
  organisation: z.string(),
  roles: z.array(z.string()),
  via: z.string(),
  at: z.string(),
  note: z.string().nullable(),
});

const ApprovalSchema = z
  .object({
    id: z.string(),
    status: z.enum(STATUSES),
    operation: z.string(),
    key: z.string().nullable(),
    parameters: z.record(z.string(), z.unknown()),
    paramsHash: z.string(),
    purpose: z.string(),
    requester: z.string(),
    organisation: z.string(),
    rule: z.string(),
    required: z.number().int(),
    counted: z.number().int(),
    reason: z.string().nullable(),
    createdAt: z.string(),
    expiresAt: z.string(),
    approvals: z.array(Vote),
    deniedBy: z.string().nullable(),
    deniedAt: z.string().nullable(),
    note: z.string().nullable(),
    executedBy: z.string().nullable(),
    executedAt: z.string().nullable(),
    executionRequestId: z.string().nullable(),
  })
  .openapi("Approval");

const RequestBody = z
  .strictObject({
    operation: z.enum(OPERATIONS),
    key: z.string().regex(KEY_NAME_RE, "key name must match ^[a-z0-9][a-z0-9._-]{0,127}$").optional(),
    purpose: z.string().min(1).max(32).default("HSYSADMIN"),
    digest: z
      .string()
      .regex(/^[0-9a-f]{64}$/, "digest must be the SHA-256 of the policy document, 64 hex digits")
      .optional(),
    body: z.record(z.string(), z.unknown()).optional(),
    reason: z.string().min(1).max(1000).optional(),
  })
  .openapi("ApprovalRequest");

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What the caller read: the approval and its parameters' digest (`paramsHash`). */
const Seen = {
  id: z.string().regex(UUID_RE, "id must be the approval's id (a UUID)"),
  digest: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "digest must be the approval's paramsHash as read (64 hex digits)"),
};
const VoteBody = z
  .strictObject({ ...Seen, note: z.string().min(1).max(2000).optional() })
  .openapi("ApprovalVote");
const ExecuteBody = z.strictObject(Seen).openapi("ApprovalExecution");

const IdParam = z.object({
  id: z
    .string()
    .regex(UUID_RE, "approval id must be a UUID")
    .openapi({ param: { name: "id", in: "path" } }),
});

/** The body must name the approval of the path: a body copied from another request is refused. */
function sameId(path: string, body: string): void {
  if (path !== body) {
    throw new CustosError(400, "invalid_request", `id: the body names ${body}, the path ${path}`);
  }
}

const errors = {
  400: json(ErrorSchema, "Invalid request"),
  415: json(ErrorSchema, "Not a JSON body"),
  401: json(ErrorSchema, "No valid credential"),
  403: json(ErrorSchema, "Not allowed: self-approval, not eligible, same organisation, other parameters"),
  404: json(ErrorSchema, "No such approval request"),
  409: json(ErrorSchema, "No policy; not pending; expired; already approved or executed"),
  503: json(ErrorSchema, "Sealed or audit unavailable"),
};

export function approvalRoutes(
  app: OpenAPIHono,
  deps: AppDeps,
  gate: Gate,
  service: ApprovalService | null,
): void {
  const approvals = (): ApprovalService => {
    if (!service) {
      throw new CustosError(
        409,
        "no_policy",
        "this server runs without --policy: there are no approval rules",
      );
    }
    return service;
  };
  const route = (method: "get" | "post", path: string, summary: string) => ({
    method,
    path,
    tags: ["approvals"],
    summary,
    security: [{ bearer: [] }],
  });

  app.openapi(
    createRoute({
      ...route(
        "post",
        "/v1/approvals",
        "Request an operation that needs approvals, with its exact parameters",
      ),
      middleware: [gate("approvals.request", { needsUnsealed: false })] as const,
      request: { body: { required: true, content: { "application/json": { schema: RequestBody } } } },
      responses: { 201: json(ApprovalSchema, "The request, pending"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const view = await approvals().request(c.get("principal"), body, c.get("requestId"));
      return c.json(view, 201);
    },
  );

  app.openapi(
    createRoute({
      ...route("get", "/v1/approvals", "Approval requests, optionally by status"),
      middleware: [gate("approvals.read", { needsUnsealed: false })] as const,
      request: { query: z.strictObject({ status: z.enum(STATUSES).optional() }) },
      responses: { 200: json(z.object({ approvals: z.array(ApprovalSchema) }), "Requests"), ...errors },
    }),
    async (c) => c.json({ approvals: await approvals().list(c.req.valid("query").status) }, 200),
  );

  app.openapi(
    createRoute({
      ...route("get", "/v1/approvals/{id}", "One approval request"),
      middleware: [gate("approvals.read", { needsUnsealed: false })] as const,
      request: { params: IdParam },
      responses: { 200: json(ApprovalSchema, "The request"), ...errors },
    }),
    async (c) => {
      const s = approvals();
      return c.json(s.view(await s.get(c.req.valid("param").id)), 200);
    },
  );

  for (const verb of ["approve", "deny"] as const) {
    app.openapi(
      createRoute({
        ...route(
          "post",
          `/v1/approvals/{id}/${verb}`,
          verb === "approve"
            ? "Approve a request (eligible principals; never the requester)"
            : "Deny a request: it ends (eligible principals; never the requester)",
        ),
        middleware: [jsonOnly, gate("approvals.vote", { needsUnsealed: false })] as const,
        request: {
          params: IdParam,
          body: { required: true, content: { "application/json": { schema: VoteBody } } },
        },
        responses: { 200: json(ApprovalSchema, "The request after the vote"), ...errors },
      }),
      async (c) => {
        const { id, digest, note } = c.req.valid("json");
        sameId(c.req.valid("param").id, id);
        const view = await approvals().vote(
          c.get("principal"),
          id,
          verb === "approve",
          note,
          c.get("requestId"),
          digest,
        );
        return c.json(view, 200);
      },
    );
  }

  app.openapi(
    createRoute({
      ...route(
        "post",
        "/v1/approvals/{id}/execute",
        "Run an approved key destruction or policy change, once",
      ),
      middleware: [jsonOnly, gate("approvals.execute", { needsUnsealed: false })] as const,
      request: {
        params: IdParam,
        body: { required: true, content: { "application/json": { schema: ExecuteBody } } },
      },
      responses: {
        200: json(z.object({ approval: ApprovalSchema, result: z.unknown() }), "Done"),
        ...errors,
      },
    }),
    async (c) => {
      const s = approvals();
      const { id, digest } = c.req.valid("json");
      sameId(c.req.valid("param").id, id);
      const principal = c.get("principal");
      const requestId = c.get("requestId");
      const record = await s.get(id);
      if (record.operation !== "destroy" && record.operation !== "policy-change") {
        throw new CustosError(
          409,
          "execute_unsupported",
          `${record.operation} is run on its own route with the header X-Approval-Id: ${id}`,
        );
      }
      const bound = JSON.parse(record.params) as { key?: string; digest?: string; purpose: string };
      const params: BoundParameters = {
        operation: record.operation,
        purpose: bound.purpose,
        ...(bound.key !== undefined && { key: bound.key }),
        // The document on disk now: a different one than approved is refused before the approval is spent.
        ...(record.operation === "policy-change" && { digest: s.policyFileDigest() }),
      };
      // What would fail the destruction anyway is refused before the approval is spent.
      if (record.operation === "destroy" && record.state === "pending") {
        if (deps.seal.sealed) throw sealedOrUninitialised(deps.seal.initialized);
        const key = await deps.store.getKey(bound.key as string);
        if (key === null) throw new CustosError(404, "not_found", `no key '${bound.key}'`);
        if (key.state === "pending-destruction" || key.state === "destroyed") {
          throw new CustosError(409, "key_not_usable", `key '${key.name}' is already ${key.state}`);
        }
      }
      await s.consume(principal, id, params, requestId, undefined, digest);
      let result: unknown;
      if (record.operation === "destroy") {
        result = await deps.keys.scheduleDestruction(bound.key as string, {
          principal: principal.id,
          requestId,
        });
      } else {
        const policy = deps.policy;
        if (!policy) throw new CustosError(409, "no_policy", "this server runs without --policy");
        const reloaded = await reloadPolicy(
          policy,
          deps.auditor,
          { principal: principal.id, requestId },
          deps.log,
          bound.digest,
        );
        if (!reloaded.ok) {
          throw new CustosError(
            422,
            "policy_refused",
            `${reloaded.message}\nthe running policy stays in force`,
            {
              digest: reloaded.digest,
            },
          );
        }
        result = reloaded;
      }
      return c.json({ approval: s.view(await s.get(id)), result }, 200);
    },
  );
}
