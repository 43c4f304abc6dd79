/**
 * Envelope operations over HTTP: datakey (clear and wrapped, or wrapped
 * only), encrypt, decrypt, rewrap. Every request names a purpose of use and
 * an encryption context; the schemas refuse unknown fields, unknown purposes
 * and oversize contexts before anything touches a key.
 */
import { createRoute, type OpenAPIHono, type z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { UseRequest } from "../../keys/envelope-ops.js";
import type { Operation } from "../../policy/authorizer.js";
import type { AppDeps } from "../app.js";
import type { Gate } from "../gate.js";
import {
  DatakeyRequest,
  DecryptRequest,
  DecryptResponse,
  EncryptRequest,
  KeyNameParam,
  WrapResponse,
} from "../schemas.js";
import { json, keyRouteErrors } from "./responses.js";

const errors = keyRouteErrors({ 400: "Invalid request, or decryption failed", 409: "Key disabled" });

function route<S extends z.ZodType, R extends z.ZodType>(
  gate: Gate,
  operation: Operation,
  path: string,
  summary: string,
  body: S,
  response: R,
) {
  return createRoute({
    method: "post",
    path,
    tags: ["envelope"],
    summary,
    security: [{ bearer: [] }],
    middleware: [gate(operation, { useBody: true })] as const,
    request: {
      params: KeyNameParam,
      body: { required: true, content: { "application/json": { schema: body } } },
    },
    responses: { 200: json(response, "Result"), ...errors },
  });
}

function use(c: Context, body: Pick<UseRequest, "purpose" | "context">): UseRequest {
  return {
    principal: c.get("principal").id,
    requestId: c.get("requestId"),
    purpose: body.purpose,
    context: body.context,
  };
}

export function envelopeRoutes(app: OpenAPIHono, { envelope }: AppDeps, gate: Gate): void {
  app.openapi(
    route(
      gate,
      "keys.datakey",
      "/v1/keys/{name}/datakey",
      "Make a data key: clear and wrapped",
      DatakeyRequest,
      WrapResponse,
    ),
    async (c) =>
      c.json(await envelope.datakey(c.req.valid("param").name, use(c, c.req.valid("json")), true), 200),
  );
  app.openapi(
    route(
      gate,
      "keys.datakey",
      "/v1/keys/{name}/datakey/wrapped",
      "Make a data key and return it only wrapped",
      DatakeyRequest,
      WrapResponse,
    ),
    async (c) =>
      c.json(await envelope.datakey(c.req.valid("param").name, use(c, c.req.valid("json")), false), 200),
  );
  app.openapi(
    route(
      gate,
      "keys.encrypt",
      "/v1/keys/{name}/encrypt",
      "Encrypt a small payload (≤ 4 KiB)",
      EncryptRequest,
      WrapResponse,
    ),
    async (c) => {
      const body = c.req.valid("json");
      const plaintext = new Uint8Array(Buffer.from(body.plaintext, "base64"));
      return c.json(await envelope.encrypt(c.req.valid("param").name, plaintext, use(c, body)), 200);
    },
  );
  app.openapi(
    route(
      gate,
      "keys.decrypt",
      "/v1/keys/{name}/decrypt",
      "Decrypt a ciphertext",
      DecryptRequest,
      DecryptResponse,
    ),
    async (c) => {
      const body = c.req.valid("json");
      return c.json(await envelope.decrypt(c.req.valid("param").name, body.ciphertext, use(c, body)), 200);
    },
  );
  app.openapi(
    route(
      gate,
      "keys.rewrap",
      "/v1/keys/{name}/rewrap",
      "Re-wrap a ciphertext under the latest version without returning plaintext",
      DecryptRequest,
      WrapResponse,
    ),
    async (c) => {
      const body = c.req.valid("json");
      return c.json(await envelope.rewrap(c.req.valid("param").name, body.ciphertext, use(c, body)), 200);
    },
  );
}
