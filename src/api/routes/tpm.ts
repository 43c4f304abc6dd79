/**
 * The TPM seal over HTTP (`custos operator tpm-seal`): its status, enabling it
 * with a PCR selection (it takes effect when the root key is next
 * reconstructed; see custody/tpm-custody.ts), and disabling it. On a node
 * without a TPM these answer 404 with a hint.
 */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { CustosError } from "../../errors.js";
import type { AppDeps } from "../app.js";
import type { Gate } from "../gate.js";
import { ErrorSchema, TpmSealEnableRequest, TpmSealStatusSchema } from "../schemas.js";
import { json } from "./responses.js";

const responses = {
  200: json(TpmSealStatusSchema, "TPM seal status"),
  400: json(ErrorSchema, "Invalid request"),
  401: json(ErrorSchema, "No valid token"),
  403: json(ErrorSchema, "Not allowed"),
  404: json(ErrorSchema, "This node has no TPM"),
  503: json(ErrorSchema, "TPM or audit unavailable"),
};

export function tpmRoutes(app: OpenAPIHono, { tpm }: AppDeps, gate: Gate): void {
  const need = () => {
    if (!tpm) throw new CustosError(404, "no_tpm", "this node has no TPM (start the server with --tpm)");
    return tpm;
  };
  const opts = { needsUnsealed: false };

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sys/tpm-seal",
      tags: ["sys"],
      summary: "TPM seal state, and which sealed PCRs changed",
      security: [{ bearer: [] }],
      middleware: [gate("sys.tpm-seal.read", opts)] as const,
      responses,
    }),
    async (c) => c.json(await need().status(), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sys/tpm-seal",
      tags: ["sys"],
      summary: "Enable the TPM seal: the next reconstruction of the root key also seals it to this TPM",
      security: [{ bearer: [] }],
      middleware: [gate("sys.tpm-seal.write", opts)] as const,
      request: {
        body: { required: true, content: { "application/json": { schema: TpmSealEnableRequest } } },
      },
      responses,
    }),
    async (c) => c.json(need().enable(c.req.valid("json").pcrs, c.get("principal").id), 200),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/sys/tpm-seal",
      tags: ["sys"],
      summary: "Disable the TPM seal and delete the sealed root key: restarts need custodians again",
      security: [{ bearer: [] }],
      middleware: [gate("sys.tpm-seal.write", opts)] as const,
      responses,
    }),
    (c) => c.json(need().disable(), 200),
  );
}
