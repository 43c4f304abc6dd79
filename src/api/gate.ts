/**
 * The gate every protected route passes before its input is even parsed:
 * sealed check, bearer-token authentication, authorisation. Each refusal is
 * audited (fail-closed: a refusal that cannot be audited is a 503) and
 * answered with a JSON error; an allowed caller continues with its principal
 * on the context. Tokens are looked up by hash and cached briefly, so the hot
 * path does not read the store on every request.
 */
import { createMiddleware } from "hono/factory";
import type { Auditor } from "../audit/auditor.js";
import { hashToken, isTokenShaped } from "../crypto/token.js";
import { type SealManager, sealedOrUninitialised } from "../custody/seal.js";
import { CustosError } from "../errors.js";
import type { Authorizer, Operation, Principal } from "../policy/authorizer.js";
import type { Store, TokenRecord } from "../store/store.js";

declare module "hono" {
  interface ContextVariableMap {
    principal: Principal;
    requestId: string;
  }
}

const TOKEN_CACHE_MS = 10_000;
const TOKEN_CACHE_MAX = 10_000;

export interface GateDeps {
  store: Store;
  seal: SealManager;
  auditor: Auditor;
  authorizer: Authorizer;
}

export class TokenAuthenticator {
  #cache = new Map<string, { record: TokenRecord | null; until: number }>();

  constructor(private readonly store: Store) {}

  async authenticate(header: string | undefined): Promise<Principal | null> {
    const match = header === undefined ? null : /^Bearer (\S+)$/i.exec(header);
    const token = match?.[1];
    if (token === undefined || !isTokenShaped(token)) return null;
    const hash = hashToken(token);
    const now = Date.now();
    let entry = this.#cache.get(hash);
    if (entry === undefined || entry.until < now) {
      entry = { record: await this.store.getToken(hash), until: now + TOKEN_CACHE_MS };
      if (this.#cache.size >= TOKEN_CACHE_MAX) this.#cache.clear();
      this.#cache.set(hash, entry);
    }
    const record = entry.record;
    if (record === null) return null;
    if (record.expiresAt !== null && new Date(record.expiresAt).getTime() <= now) return null;
    return { id: record.principal, roles: record.roles };
  }
}

export function gateFactory({ seal, auditor, authorizer, store }: GateDeps) {
  const tokens = new TokenAuthenticator(store);
  return function gate(operation: Operation, opts: { needsUnsealed: boolean } = { needsUnsealed: true }) {
    return createMiddleware(async function gateMiddleware(c, next) {
      const key = c.req.param("name");
      const requestId = c.get("requestId");
      const refuse = async (principal: string, reason: string, error: CustosError): Promise<never> => {
        await auditor.record(
          auditor.event({ principal, operation, decision: "deny", reason, key, requestId }),
        );
        throw error;
      };
      if (opts.needsUnsealed && seal.sealed) {
        const error = sealedOrUninitialised(seal.initialized);
        return refuse("anonymous", error.code, error);
      }
      const principal = await tokens.authenticate(c.req.header("authorization"));
      if (principal === null) {
        return refuse(
          "anonymous",
          "missing, unknown or expired token",
          new CustosError(
            401,
            "unauthenticated",
            "a valid token is required: send 'Authorization: Bearer <token>' (CUSTOS_TOKEN for the CLI)",
          ),
        );
      }
      const decision = authorizer.decide({ principal, operation, key });
      if (!decision.allow) {
        return refuse(
          principal.id,
          `${decision.rule}: ${decision.reason}`,
          new CustosError(
            403,
            "forbidden",
            `principal '${principal.id}' may not ${operation}: ${decision.reason}`,
          ),
        );
      }
      c.set("principal", principal);
      await next();
    });
  };
}

export type Gate = ReturnType<typeof gateFactory>;
