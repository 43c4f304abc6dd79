/**
 * The custody ceremony over HTTP: seal status (public, so custodians can see
 * the ceremony nonce and key), init (flat k-of-N or a custody tree), unseal
 * submissions, the node's own read of its repositories, seal. Init, unseal
 * submissions and the repository read need no token — the shares are the
 * credential, and the repository read only makes the node fetch its own
 * configured shares — but each step is audited. Under a policy, init is the
 * operation `ceremony-init` and needs a credential the policy allows it.
 * Init on an initialised node is refused before its body is read; the
 * repository read is rate-limited per source (api/anonymous.ts).
 */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import { refuseLegacySubmission } from "../../custody/ceremony-kind.js";
import { TreeInputSchema } from "../../custody/tree.js";
import { CustosError } from "../../errors.js";
import type { AnonymousGuard } from "../anonymous.js";
import type { AppDeps } from "../app.js";
import type { Gate } from "../gate.js";
import {
  ErrorSchema,
  InitRequest,
  InitResponse,
  RepositoryUnsealResponse,
  SealStatusSchema,
  UnsealRequest,
} from "../schemas.js";

const errors = {
  400: { description: "Invalid request", content: { "application/json": { schema: ErrorSchema } } },
  409: { description: "Conflict", content: { "application/json": { schema: ErrorSchema } } },
  503: {
    description: "Sealed or audit unavailable",
    content: { "application/json": { schema: ErrorSchema } },
  },
};

export function sysRoutes(
  app: OpenAPIHono,
  { seal, tpm, policy, anonymous }: AppDeps & { anonymous: AnonymousGuard },
  gate: Gate,
): void {
  const initGate = gate("sys.init", { needsUnsealed: false });
  // Before the body is read or parsed: an initialised node has nothing to say about it.
  const initOnce = createMiddleware(async function initOnce(c, next) {
    if (seal.initialized) throw new CustosError(409, "already_initialized", "custos is already initialised");
    // Without a policy, init is open to whoever reaches an uninitialised node (bootstrap).
    return policy ? initGate(c, next) : next();
  });
  const status = () => ({
    ...seal.status(),
    protection: tpm ? ("tpm" as const) : ("software" as const),
    ...(tpm ? { tpmSeal: tpm.statusNow() } : {}),
  });
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sys/seal-status",
      tags: ["sys"],
      summary: "Seal state and the current unseal ceremony's nonce and key",
      responses: {
        200: { description: "Seal status", content: { "application/json": { schema: SealStatusSchema } } },
      },
    }),
    (c) => c.json(status(), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sys/init",
      tags: ["sys"],
      summary: "Make the root key and split it among custodians",
      middleware: [initOnce] as const,
      request: { body: { required: true, content: { "application/json": { schema: InitRequest } } } },
      responses: {
        200: {
          description: "Encrypted shares and the root token",
          content: { "application/json": { schema: InitResponse } },
        },
        ...errors,
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const result =
        "tree" in body
          ? await seal.initTree(parseTree(body.tree), c.get("requestId"))
          : await seal.init(body.threshold, body.custodians, c.get("requestId"));
      return c.json(
        {
          initId: result.initId,
          threshold: result.threshold,
          shares: result.shareFiles,
          rootToken: result.rootToken,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sys/unseal",
      tags: ["sys"],
      summary: "Submit one custodian's share, HPKE-encrypted to the ceremony key",
      request: { body: { required: true, content: { "application/json": { schema: UnsealRequest } } } },
      responses: {
        200: {
          description: "Seal status after the submission",
          content: { "application/json": { schema: SealStatusSchema } },
        },
        ...errors,
      },
    }),
    async (c) => {
      const submission = c.req.valid("json");
      refuseLegacySubmission(submission);
      return c.json(await seal.submit(submission, c.get("requestId")), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sys/unseal/repositories",
      tags: ["sys"],
      summary: "Read the custody tree's repositories and TPM leaf, and unseal when enough good shares answer",
      middleware: [anonymous.limitRepositoryReads] as const,
      responses: {
        200: {
          description: "Unsealed; the leaves that failed, by path",
          content: { "application/json": { schema: RepositoryUnsealResponse } },
        },
        ...errors,
      },
    }),
    async (c) => c.json(await seal.unsealFromNodeShares(c.get("requestId")), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sys/unseal/reset",
      tags: ["sys"],
      summary: "Discard the shares submitted so far and start a new unseal ceremony",
      security: [{ bearer: [] }],
      // A token is required: an anonymous reset would let anyone keep the node sealed forever.
      middleware: [gate("sys.unseal.reset", { needsUnsealed: false })] as const,
      responses: {
        200: { description: "Seal status", content: { "application/json": { schema: SealStatusSchema } } },
        ...errors,
      },
    }),
    async (c) => c.json(await seal.reset(c.get("principal").id, c.get("requestId")), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sys/seal",
      tags: ["sys"],
      summary: "Seal this node: drop the root key and every loaded key",
      security: [{ bearer: [] }],
      middleware: [gate("sys.seal", { needsUnsealed: false })] as const,
      responses: {
        200: { description: "Seal status", content: { "application/json": { schema: SealStatusSchema } } },
        ...errors,
      },
    }),
    async (c) => {
      await seal.seal(c.get("principal").id, c.get("requestId"));
      return c.json(seal.status(), 200);
    },
  );
}

/** The tree of an init request, checked by the custody tree's own schema; a clear 400 naming the field. */
function parseTree(raw: unknown) {
  const parsed = TreeInputSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new CustosError(
    400,
    "invalid_tree",
    `tree.${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"} (gates are {threshold, of, name?}; leaves {custodian, publicKey}, {repository}, {tpm, pcrs?})`,
  );
}
