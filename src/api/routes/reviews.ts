/**
 * Break-glass reviews: `GET /v1/reviews` (all, or `?open=true` for those
 * awaiting review) and `POST /v1/reviews/{id}/close` with the reviewer's
 * note. The gate decides who may list (operation `read-audit`) and who may
 * close (a holder of the policy's break-glass review roles); this route adds
 * what only the review itself can tell: the reviewer holds one of the roles
 * the review was opened for, and is not the user whose access it records.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { durably } from "../../audit/auditor.js";
import { CustosError } from "../../errors.js";
import type { AppDeps } from "../app.js";
import type { Gate } from "../gate.js";
import { ErrorSchema } from "../schemas.js";
import { json } from "./responses.js";

const ReviewSchema = z
  .object({
    id: z.string(),
    requestId: z.string(),
    principal: z.string(),
    organisation: z.string(),
    operation: z.string(),
    key: z.string().nullable(),
    purpose: z.string(),
    rule: z.string(),
    reason: z.string(),
    reviewRoles: z.array(z.string()),
    createdAt: z.string(),
    dueAt: z.string(),
    closedBy: z.string().nullable(),
    closedAt: z.string().nullable(),
    note: z.string().nullable(),
  })
  .openapi("BreakGlassReview");

const IdParam = z.object({
  id: z
    .string()
    .regex(/^[0-9a-f-]{36}$/, "review id must be a UUID")
    .openapi({ param: { name: "id", in: "path" } }),
});

const errors = {
  400: json(ErrorSchema, "Invalid request"),
  401: json(ErrorSchema, "No valid credential"),
  403: json(ErrorSchema, "Not allowed (or the reviewer is the user)"),
  404: json(ErrorSchema, "No such review"),
  409: json(ErrorSchema, "Already closed"),
  503: json(ErrorSchema, "Sealed or audit unavailable"),
};

export function reviewRoutes(app: OpenAPIHono, { store, auditor }: AppDeps, gate: Gate): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/reviews",
      tags: ["reviews"],
      summary: "Break-glass uses and their reviews; ?open=true lists those awaiting review",
      security: [{ bearer: [] }],
      middleware: [gate("reviews.read", { needsUnsealed: false })] as const,
      request: { query: z.strictObject({ open: z.enum(["true", "false"]).optional() }) },
      responses: { 200: json(z.object({ reviews: z.array(ReviewSchema) }), "Reviews"), ...errors },
    }),
    async (c) => {
      const open = c.req.valid("query").open === "true";
      const reviews = await store.listReviews({ open });
      await auditor.record(
        auditor.event({
          principal: c.get("principal").id,
          operation: "reviews.read",
          decision: "allow",
          reason: `${reviews.length} ${open ? "open " : ""}review(s)`,
          requestId: c.get("requestId"),
        }),
      );
      return c.json({ reviews }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/reviews/{id}/close",
      tags: ["reviews"],
      summary: "Close a break-glass review with the reviewer's finding (never by the user)",
      security: [{ bearer: [] }],
      middleware: [gate("reviews.close", { needsUnsealed: false })] as const,
      request: {
        params: IdParam,
        body: {
          required: true,
          content: {
            "application/json": { schema: z.strictObject({ note: z.string().min(1).max(2000) }) },
          },
        },
      },
      responses: { 200: json(ReviewSchema, "The closed review"), ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const principal = c.get("principal");
      const requestId = c.get("requestId");
      const review = await store.getReview(id);
      if (review === null) throw new CustosError(404, "not_found", `no review ${id}`);
      if (review.closedAt !== null) {
        throw new CustosError(409, "already_closed", `review ${id} was closed by ${review.closedBy}`);
      }
      const refuse = async (rule: string, reason: string) => {
        await auditor.record(
          auditor.event({
            principal: principal.id,
            operation: "reviews.close",
            decision: "deny",
            reason,
            rule,
            requestId,
          }),
        );
        throw new CustosError(403, rule === "review:self" ? "self_review" : "forbidden", reason, { rule });
      };
      if (review.principal === principal.id) {
        await refuse("review:self", `${principal.id} may not review their own break-glass use`);
      }
      // A policy decision knows the principal's organisation; then the roles the review names must match too.
      if (
        principal.organisation !== undefined &&
        !review.reviewRoles.some((r) => principal.roles.includes(r))
      ) {
        await refuse("review:not-eligible", `review ${id} is for ${review.reviewRoles.join(" or ")}`);
      }
      const close = {
        closedBy: principal.id,
        closedAt: new Date().toISOString(),
        note: c.req.valid("json").note,
      };
      await durably(
        () =>
          store.closeReview(
            id,
            close,
            auditor.event({
              principal: principal.id,
              operation: "reviews.close",
              decision: "allow",
              reason: `review ${id} of ${review.principal}'s break-glass ${review.operation}${review.key ? ` on ${review.key}` : ""} closed`,
              key: review.key ?? undefined,
              requestId,
              breakGlass: true,
            }),
          ),
        `review ${id} cannot be closed (closed meanwhile, or by its user)`,
      );
      return c.json({ ...review, ...close }, 200);
    },
  );
}
