/**
 * Token issuance: the root token creates tokens for principals with roles.
 * The token is returned once; the store keeps only its hash.
 */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { durably } from "../../audit/auditor.js";
import { hashToken, newToken } from "../../crypto/token.js";
import type { AppDeps } from "../app.js";
import type { Gate } from "../gate.js";
import { CreateTokenRequest, ErrorSchema, TokenResponse } from "../schemas.js";

export function tokenRoutes(app: OpenAPIHono, { store, auditor }: AppDeps, gate: Gate): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/tokens",
      tags: ["tokens"],
      summary: "Create a token for a principal with roles",
      security: [{ bearer: [] }],
      middleware: [gate("tokens.create")] as const,
      request: { body: { required: true, content: { "application/json": { schema: CreateTokenRequest } } } },
      responses: {
        201: {
          description: "The token, shown once",
          content: { "application/json": { schema: TokenResponse } },
        },
        400: { description: "Invalid request", content: { "application/json": { schema: ErrorSchema } } },
        403: { description: "Not allowed", content: { "application/json": { schema: ErrorSchema } } },
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const token = newToken();
      const now = new Date();
      const expiresAt = body.ttlSeconds
        ? new Date(now.getTime() + body.ttlSeconds * 1000).toISOString()
        : null;
      const creator = c.get("principal").id;
      await durably(() =>
        store.putToken(
          {
            hash: hashToken(token),
            principal: body.principal,
            roles: body.roles,
            createdBy: creator,
            createdAt: now.toISOString(),
            expiresAt,
          },
          auditor.event({
            principal: creator,
            operation: "tokens.create",
            decision: "allow",
            reason: `token for ${body.principal} with roles ${body.roles.join(", ")}${expiresAt ? ` until ${expiresAt}` : ""}`,
            requestId: c.get("requestId"),
          }),
        ),
      );
      return c.json({ token, principal: body.principal, roles: body.roles, expiresAt }, 201);
    },
  );
}
