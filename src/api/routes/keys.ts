/**
 * Key administration: create, list, describe, rotate, update (enable/disable,
 * minimum decryption version, rotation period), schedule and cancel
 * destruction. Responses describe keys and never carry key material.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Operation } from "../../policy/authorizer.js";
import type { AppDeps } from "../app.js";
import type { Gate } from "../gate.js";
import { CreateKeyRequest, KeyInfoSchema, KeyNameParam, UpdateKeyRequest } from "../schemas.js";
import { json, keyRouteErrors } from "./responses.js";

const errors = keyRouteErrors();

/** The operations a PATCH performs, one per field present (an empty body changes nothing: update). */
export function patchOperations(body: Readonly<Record<string, unknown>>): Operation[] {
  const ops = new Set<Operation>();
  for (const field of Object.keys(body)) {
    ops.add(field === "enabled" && body.enabled === false ? "keys.disable" : "keys.update");
  }
  return ops.size ? [...ops] : ["keys.update"];
}

export function keyRoutes(app: OpenAPIHono, { keys }: AppDeps, gate: Gate): void {
  const who = (c: { get(k: "principal"): { id: string }; get(k: "requestId"): string }) => ({
    principal: c.get("principal").id,
    requestId: c.get("requestId"),
  });

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/keys",
      tags: ["keys"],
      summary: "Create a key (version 1)",
      security: [{ bearer: [] }],
      middleware: [gate("keys.create", { keyFromBody: true })] as const,
      request: { body: { required: true, content: { "application/json": { schema: CreateKeyRequest } } } },
      responses: { 201: json(KeyInfoSchema, "The new key"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const sets = body.trustSets?.map((t) => ({
        name: t.name,
        threshold: t.threshold,
        nodes: t.shareNodes,
      }));
      const one =
        body.shareNodes || body.threshold
          ? [
              {
                name: "default",
                nodes: body.shareNodes ?? keys.shareNodeNames(),
                threshold: body.threshold ?? 0,
              },
            ]
          : undefined;
      const created = await keys.create(
        body.name,
        body.rotationPeriodSeconds,
        who(c),
        body.protection,
        sets ?? one?.map((s) => ({ ...s, threshold: s.threshold || Math.floor(s.nodes.length / 2) + 1 })),
      );
      return c.json(created, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/keys",
      tags: ["keys"],
      summary: "List keys",
      security: [{ bearer: [] }],
      middleware: [gate("keys.list")] as const,
      responses: { 200: json(z.object({ keys: z.array(KeyInfoSchema) }), "All keys"), ...errors },
    }),
    async (c) => c.json({ keys: await keys.list() }, 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/keys/{name}",
      tags: ["keys"],
      summary: "Describe a key",
      security: [{ bearer: [] }],
      middleware: [gate("keys.read")] as const,
      request: { params: KeyNameParam },
      responses: { 200: json(KeyInfoSchema, "The key"), ...errors },
    }),
    async (c) => c.json(await keys.describe(c.req.valid("param").name), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/keys/{name}/rotate",
      tags: ["keys"],
      summary: "Add a new version; it becomes the one used to wrap",
      security: [{ bearer: [] }],
      middleware: [gate("keys.rotate")] as const,
      request: { params: KeyNameParam },
      responses: { 200: json(KeyInfoSchema, "The key after rotation"), ...errors },
    }),
    async (c) => c.json(await keys.rotate(c.req.valid("param").name, who(c)), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/keys/{name}/refresh-shares",
      tags: ["keys"],
      summary: "Threshold keys: re-randomise every share (same public key); old shares become useless",
      security: [{ bearer: [] }],
      // Refreshing shares is a rotation of the key's custody, so it needs what rotation needs.
      middleware: [gate("keys.rotate")] as const,
      request: { params: KeyNameParam },
      responses: {
        200: json(
          KeyInfoSchema.extend({ refreshed: z.array(z.number().int()), notCommitted: z.array(z.string()) }),
          "The key; the versions refreshed; share nodes not yet told to drop old shares",
        ),
        ...errors,
      },
    }),
    async (c) => c.json(await keys.refreshShares(c.req.valid("param").name, who(c)), 200),
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/v1/keys/{name}",
      tags: ["keys"],
      summary: "Enable or disable, set the minimum decryption version or the rotation period",
      security: [{ bearer: [] }],
      // Each field is authorised by its own operation, all or nothing: disabling is
      // `disable`, every other change `update`, so a disable grant cannot carry them.
      middleware: [gate("keys.update", { refine: patchOperations })] as const,
      request: {
        params: KeyNameParam,
        body: { required: true, content: { "application/json": { schema: UpdateKeyRequest } } },
      },
      responses: { 200: json(KeyInfoSchema, "The key after the change"), ...errors },
    }),
    async (c) => c.json(await keys.update(c.req.valid("param").name, c.req.valid("json"), who(c)), 200),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/keys/{name}",
      tags: ["keys"],
      summary: "Schedule the key's destruction after the waiting period (cancellable)",
      security: [{ bearer: [] }],
      middleware: [gate("keys.destroy")] as const,
      request: { params: KeyNameParam },
      responses: { 202: json(KeyInfoSchema, "The key, pending destruction"), ...errors },
    }),
    async (c) => c.json(await keys.scheduleDestruction(c.req.valid("param").name, who(c)), 202),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/keys/{name}/cancel-destruction",
      tags: ["keys"],
      summary: "Cancel a scheduled destruction; the key stays disabled until enabled",
      security: [{ bearer: [] }],
      middleware: [gate("keys.cancel-destruction")] as const,
      request: { params: KeyNameParam },
      responses: { 200: json(KeyInfoSchema, "The key, disabled"), ...errors },
    }),
    async (c) => c.json(await keys.cancelDestruction(c.req.valid("param").name, who(c)), 200),
  );
}
