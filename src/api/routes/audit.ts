/**
 * Read access to the audit chain, for auditors and `custos audit verify`:
 * events in order with the canonical JSON that was hashed and the chain hash,
 * so a client can recompute the chain without trusting the server.
 */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppDeps } from "../app.js";
import type { Gate } from "../gate.js";
import { AuditEventsResponse, AuditQuery, ErrorSchema } from "../schemas.js";

export function auditRoutes(app: OpenAPIHono, { store, auditor }: AppDeps, gate: Gate): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/audit/events",
      tags: ["audit"],
      summary: "Audit events in chain order, with their hashes",
      security: [{ bearer: [] }],
      middleware: [gate("audit.read", { needsUnsealed: false })] as const,
      request: { query: AuditQuery },
      responses: {
        200: {
          description: "A page of events",
          content: { "application/json": { schema: AuditEventsResponse } },
        },
        400: { description: "Invalid request", content: { "application/json": { schema: ErrorSchema } } },
      },
    }),
    async (c) => {
      const { from, limit } = c.req.valid("query");
      const rows = await store.readAudit({ fromSeq: from, limit });
      await auditor.record(
        auditor.event({
          principal: c.get("principal").id,
          operation: "audit.read",
          decision: "allow",
          reason: `events from ${from}, ${rows.length} returned`,
          requestId: c.get("requestId"),
        }),
      );
      const last = rows.at(-1);
      return c.json(
        {
          events: rows.map((r) => ({
            seq: r.event.seq,
            hash: r.hash,
            canonical: r.canonical,
            event: { ...r.event },
          })),
          next: rows.length === limit && last ? last.event.seq + 1 : null,
        },
        200,
      );
    },
  );
}
