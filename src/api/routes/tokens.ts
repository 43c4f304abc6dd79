/**
 * Tokens: minting, listing, revoking. A token is returned once; the store
 * keeps only its hash, and a token's id is the first 16 hex digits of that
 * hash. Minting is bounded twice: the gate decides `tokens.create` like any
 * operation, then the authoriser says whether this caller may mint for this
 * principal (under a policy, a token *is* its principal: src/policy/minting.ts);
 * names custos writes itself are never minted. Every token expires — 30 days
 * unless the request asks for less or more (at most 366) — except the root
 * token of init, which listings flag. Revocation deletes the token, audited
 * in the same transaction, and authentication reads the store on every
 * request, so a revoked token fails on the very next one.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { durably } from "../../audit/auditor.js";
import { hashToken, newToken } from "../../crypto/token.js";
import { CustosError } from "../../errors.js";
import { isReservedPrincipal, reservedReason } from "../../policy/reserved.js";
import type { TokenRecord } from "../../store/store.js";
import type { AppDeps } from "../app.js";
import { type Gate, PURPOSE_HEADER } from "../gate.js";
import { CreateTokenRequest, ErrorSchema, TokenResponse } from "../schemas.js";

/** A token's lifetime when the request names none (docs/POLICY.md, "Tokens"). */
export const DEFAULT_TOKEN_TTL_SECONDS = 30 * 86400;
/** Hex digits of the token's SHA-256 that name it in listings and revocations. */
export const TOKEN_ID_LENGTH = 16;

const TokenInfo = z
  .object({
    id: z.string().describe("the first 16 hex digits of the token's SHA-256"),
    principal: z.string(),
    roles: z.array(z.string()),
    createdBy: z.string(),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    lastUsedAt: z.string().nullable().describe("to the minute"),
    mintedUnder: z.string().nullable().describe("the policy grant it was minted under"),
    neverExpires: z.boolean().describe("the root token of init: revoke it once bootstrap is done"),
  })
  .openapi("TokenInfo");

const TokenIdParam = z.object({
  id: z
    .string()
    .regex(/^[0-9a-f]{16}$/, "a token id is 16 lowercase hex digits (custos token list)")
    .openapi({ param: { name: "id", in: "path" } }),
});

const errors = {
  400: { description: "Invalid request", content: { "application/json": { schema: ErrorSchema } } },
  403: { description: "Not allowed", content: { "application/json": { schema: ErrorSchema } } },
} as const;

export const tokenId = (hash: string): string => hash.slice(0, TOKEN_ID_LENGTH);

function info(t: TokenRecord): z.infer<typeof TokenInfo> {
  return {
    id: tokenId(t.hash),
    principal: t.principal,
    roles: t.roles,
    createdBy: t.createdBy,
    createdAt: t.createdAt,
    expiresAt: t.expiresAt,
    lastUsedAt: t.lastUsedAt ?? null,
    mintedUnder: t.mintedUnder ?? null,
    neverExpires: t.expiresAt === null,
  };
}

export function tokenRoutes(app: OpenAPIHono, { store, auditor, authorizer }: AppDeps, gate: Gate): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/tokens",
      tags: ["tokens"],
      summary: "Mint a token for a principal (under a policy, only one the caller may mint for)",
      security: [{ bearer: [] }],
      middleware: [gate("tokens.create")] as const,
      request: { body: { required: true, content: { "application/json": { schema: CreateTokenRequest } } } },
      responses: {
        201: {
          description: "The token, shown once",
          content: { "application/json": { schema: TokenResponse } },
        },
        ...errors,
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const minter = c.get("principal");
      const requestId = c.get("requestId");
      const refuse = async (rule: string, reason: string): Promise<never> => {
        await auditor.record(
          auditor.event({
            principal: minter.id,
            operation: "tokens.create",
            decision: "deny",
            reason: `token for ${body.principal} refused: ${reason}`,
            rule,
            requestId,
          }),
        );
        throw new CustosError(
          403,
          "forbidden",
          `${minter.id} may not mint a token for ${body.principal}: ${reason}`,
          {
            rule,
          },
        );
      };
      if (isReservedPrincipal(body.principal))
        await refuse("tokens:reserved-name", reservedReason(body.principal));
      let mintedUnder: string | null = null;
      if (authorizer.mayMint) {
        const may = authorizer.mayMint(minter, body.principal, c.req.header(PURPOSE_HEADER));
        if ("rule" in may) return refuse(may.rule, may.reason);
        mintedUnder = may.grant;
      }
      const token = newToken();
      const now = new Date();
      const ttl = body.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
      const expiresAt = new Date(now.getTime() + ttl * 1000).toISOString();
      const hash = hashToken(token);
      await durably(() =>
        store.putToken(
          {
            hash,
            principal: body.principal,
            roles: body.roles,
            createdBy: minter.id,
            createdAt: now.toISOString(),
            expiresAt,
            lastUsedAt: null,
            mintedUnder,
          },
          auditor.event({
            principal: minter.id,
            operation: "tokens.create",
            decision: "allow",
            reason: `token ${tokenId(hash)} for ${body.principal} with roles ${body.roles.join(", ")} until ${expiresAt}${mintedUnder ? ` under grant ${mintedUnder}` : ""}`,
            requestId,
          }),
        ),
      );
      return c.json({ token, principal: body.principal, roles: body.roles, expiresAt }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/tokens",
      tags: ["tokens"],
      summary: "List tokens: id (hash prefix), principal, creator, expiry, last use",
      security: [{ bearer: [] }],
      middleware: [gate("tokens.read")] as const,
      responses: {
        200: {
          description: "Every token, oldest first",
          content: { "application/json": { schema: z.object({ tokens: z.array(TokenInfo) }) } },
        },
        ...errors,
      },
    }),
    async (c) => c.json({ tokens: (await store.listTokens()).map(info) }, 200),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/tokens/{id}",
      tags: ["tokens"],
      summary: "Revoke a token; it is refused from the next request on",
      security: [{ bearer: [] }],
      middleware: [gate("tokens.revoke")] as const,
      request: { params: TokenIdParam },
      responses: {
        200: { description: "The revoked token", content: { "application/json": { schema: TokenInfo } } },
        404: { description: "No such token", content: { "application/json": { schema: ErrorSchema } } },
        409: { description: "Revoked already", content: { "application/json": { schema: ErrorSchema } } },
        ...errors,
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const found = (await store.listTokens()).filter((t) => tokenId(t.hash) === id);
      if (found.length !== 1) throw new CustosError(404, "not_found", `no token ${id} (custos token list)`);
      const token = found[0] as TokenRecord;
      await durably(
        () =>
          store.revokeToken(
            token.hash,
            auditor.event({
              principal: c.get("principal").id,
              operation: "tokens.revoke",
              decision: "allow",
              reason: `token ${id} of ${token.principal} (created by ${token.createdBy}) revoked`,
              requestId: c.get("requestId"),
            }),
          ),
        `token ${id} was revoked already`,
      );
      return c.json(info(token), 200);
    },
  );
}
