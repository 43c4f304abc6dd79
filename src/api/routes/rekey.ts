/**
 * Rekey and root rotation over HTTP (custody/custody-change.ts,
 * docs/FORMATS.md §5.9). Starting and cancelling need a token (the policy's
 * `ceremony-rekey` / `ceremony-rotate-root`); the status is public, as
 * seal-status is, because custodians need the ceremony's kind, nonce, key
 * and signature, the new tree and its digest to check it against, and their
 * new share files, which are sealed to them; submissions and confirmations
 * need no token — the shares are the credential — and each is audited with
 * the leaf it names. Submissions from before ceremony kinds are refused by
 * name (docs/FORMATS.md §5.3).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import {
  CEREMONY_KINDS,
  LegacySubmissionSchema,
  refuseLegacySubmission,
} from "../../custody/ceremony-kind.js";
import type { CustodyChanger } from "../../custody/custody-change.js";
import { TreeUnsealSchema } from "../../custody/tree-share-format.js";
import type { Gate } from "../gate.js";
import { ErrorSchema, UnsealRequest } from "../schemas.js";
import { json } from "./responses.js";

const ChangeStatusSchema = z
  .object({
    active: z.boolean(),
    kind: z.enum(["rekey", "rotate-root"]).nullable(),
    phase: z.enum(["quorum", "confirming"]).nullable(),
    ceremonyKind: z.enum(CEREMONY_KINDS).nullable(),
    newTree: z.unknown().nullable(),
    treeDigest: z.string().nullable(),
    nonce: z.string().nullable(),
    ceremonyPublicKey: z.string().nullable(),
    ceremonySignature: z.string().nullable(),
    expiresAt: z.string().nullable(),
    initId: z.string().nullable(),
    rootGeneration: z.number().int(),
    quorum: z.unknown().nullable(),
    submitted: z.array(z.string()),
    newInitId: z.string().nullable(),
    newRootGeneration: z.number().int().nullable(),
    shareFiles: z.array(z.object({}).catchall(z.unknown())),
    confirmed: z.array(z.string()),
    unconfirmed: z.array(z.string()),
  })
  .openapi("CustodyChangeStatus");

const StartRequest = z
  .strictObject({
    // Checked in full by custody/tree.ts's TreeInputSchema (a recursive schema the OpenAPI document cannot hold).
    tree: z
      .record(z.string(), z.unknown())
      .optional()
      .openapi({ description: "the new custody tree (docs/FORMATS.md §5.5); required for a rekey" }),
  })
  .openapi("CustodyChangeStart");

const responses = {
  200: json(ChangeStatusSchema, "Status of the custody change"),
  400: json(ErrorSchema, "Invalid request or refused share"),
  401: json(ErrorSchema, "No valid token"),
  403: json(ErrorSchema, "Not allowed"),
  409: json(ErrorSchema, "Conflict (no change, another in progress, wrong ceremony)"),
  503: json(ErrorSchema, "Sealed, repository or audit unavailable"),
};

const body = <T extends z.ZodTypeAny>(schema: T) => ({
  body: { required: true, content: { "application/json": { schema } } },
});

export function rekeyRoutes(app: OpenAPIHono, custody: CustodyChanger, gate: Gate): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sys/rekey",
      tags: ["sys"],
      summary: "The rekey or root rotation in progress: nonce, ceremony key, progress, new share files",
      responses,
    }),
    (c) => c.json(custody.status(), 200),
  );

  for (const kind of ["rekey", "rotate-root"] as const) {
    app.openapi(
      createRoute({
        method: "post",
        path: `/v1/sys/${kind}/init`,
        tags: ["sys"],
        summary:
          kind === "rekey"
            ? "Start a rekey: new shares of the same root key over a new tree"
            : "Start a root rotation: a new root key, the key ring re-sealed, new shares",
        security: [{ bearer: [] }],
        middleware: [gate(kind === "rekey" ? "sys.rekey" : "sys.rotate-root")] as const,
        request: body(StartRequest),
        responses,
      }),
      async (c) =>
        c.json(
          await custody.start(kind, c.req.valid("json").tree, c.get("principal").id, c.get("requestId")),
          200,
        ),
    );
  }

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sys/rekey/submit",
      tags: ["sys"],
      summary: "A custodian's current share for the change's quorum, sealed to its ceremony key",
      request: body(UnsealRequest),
      responses,
    }),
    async (c) => {
      const submission = c.req.valid("json");
      refuseLegacySubmission(submission);
      return c.json(await custody.submit(submission, c.get("requestId")), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sys/rekey/confirm",
      tags: ["sys"],
      summary: "A custodian's new share, opened from their new share file and sealed to the ceremony key",
      request: body(z.union([TreeUnsealSchema, LegacySubmissionSchema])),
      responses,
    }),
    async (c) => {
      const submission = c.req.valid("json");
      refuseLegacySubmission(submission);
      return c.json(await custody.confirm(submission, c.get("requestId")), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sys/rekey/cancel",
      tags: ["sys"],
      summary: "Cancel the rekey or root rotation in progress: the pending custody is discarded",
      security: [{ bearer: [] }],
      middleware: [gate("sys.rekey", { needsUnsealed: false })] as const,
      responses,
    }),
    async (c) => c.json(await custody.cancel(c.get("principal").id, c.get("requestId")), 200),
  );
}
