/**
 * Who is calling: the gate's authentication, kept apart from authorisation.
 * Three credentials, tried in this order: `Authorization: Bearer` with a
 * JWT (when JWT keys are configured), `Authorization: Bearer` with a `cst_`
 * token, or — only without an Authorization header — a client certificate
 * the TLS listener verified. A token's holder becomes the authoriser's
 * principal of that name (`resolve`); JWT and certificate claims are mapped
 * by the authoriser (the policy's identity rules). Whatever the credential,
 * the authoriser then admits the principal or not (separation of duty over
 * every credential the principal can hold; a minted token only while its
 * grant still covers it). Tokens are looked up by hash on every request —
 * an indexed read on the reader connection, microseconds — and never
 * cached, so a revoked or expired token is refused on the very next request
 * (issue 10, finding 3). The last use is recorded at most once a minute per
 * token, off the request's path. Failures carry the status, code and the
 * reason for the audit.
 */
import type { Context } from "hono";
import { hashToken, isTokenShaped } from "../crypto/token.js";
import type { ErrorStatus } from "../errors.js";
import type { Authorizer, Principal } from "../policy/authorizer.js";
import type { Store, TokenRecord } from "../store/store.js";
import { clientCertificate } from "./client-cert.js";
import { isJwtShaped, type JwtVerifier } from "./jwt.js";

/** How stale a token's recorded last use may be: one write per token per minute at most. */
export const LAST_USE_RESOLUTION_MS = 60_000;
const BEARER_RE = /^Bearer (\S+)$/i;

export class TokenAuthenticator {
  constructor(private readonly store: Store) {}

  async authenticate(token: string): Promise<Principal | null> {
    if (!isTokenShaped(token)) return null;
    const hash = hashToken(token);
    const now = Date.now();
    const record = await this.store.getToken(hash);
    if (record === null) return null;
    if (record.expiresAt !== null && new Date(record.expiresAt).getTime() <= now) return null;
    this.#touch(record, now);
    return {
      id: record.principal,
      roles: record.roles,
      ...(record.mintedUnder ? { mintedUnder: record.mintedUnder } : {}),
    };
  }

  /** Best effort: a failed touch (store closing, disk full) must not fail the request it describes. */
  #touch(record: TokenRecord, now: number): void {
    const last = record.lastUsedAt ? Date.parse(record.lastUsedAt) : 0;
    if (now - last < LAST_USE_RESOLUTION_MS) return;
    this.store.touchToken(record.hash, new Date(now).toISOString()).catch(() => {});
  }
}

export type Authentication =
  | { ok: true; principal: Principal }
  | {
      ok: false;
      status: ErrorStatus;
      code: string;
      message: string;
      /** For the audit. */
      reason: string;
      /** The caller's name when it is known (a token of an undeclared principal). */
      principal?: string;
      rule?: string;
    };

const HOW =
  "send 'Authorization: Bearer <token>' (a custos token, CUSTOS_TOKEN for the CLI, or an identity-provider JWT) or a client certificate";

const unauthenticated = (
  reason: string,
  message = `a valid credential is required: ${HOW}`,
): Authentication => ({
  ok: false,
  status: 401,
  code: "unauthenticated",
  message,
  reason,
});

export class Authenticator {
  readonly #tokens: TokenAuthenticator;

  constructor(
    store: Store,
    private readonly authorizer: Authorizer,
    private readonly jwt: JwtVerifier | null,
    private readonly clientCerts: boolean,
  ) {
    this.#tokens = new TokenAuthenticator(store);
  }

  async authenticate(c: Context): Promise<Authentication> {
    const header = c.req.header("authorization");
    if (header === undefined) return this.#certificate(c);
    const bearer = BEARER_RE.exec(header)?.[1];
    if (bearer === undefined) return unauthenticated("malformed Authorization header");
    if (this.jwt && isJwtShaped(bearer)) return this.#jwt(bearer);
    const holder = await this.#tokens.authenticate(bearer);
    if (holder === null) {
      return unauthenticated(
        "missing, unknown or expired token",
        "a valid token is required: send 'Authorization: Bearer <token>' (CUSTOS_TOKEN for the CLI)",
      );
    }
    const principal = this.authorizer.resolve({ ...holder, via: "token" });
    if (principal === null) {
      return {
        ok: false,
        status: 403,
        code: "unknown_principal",
        message: `the token's principal '${holder.id}' is not declared in the policy`,
        reason: `token principal ${holder.id} is not declared in the policy`,
        principal: holder.id,
        rule: "identity:undeclared",
      };
    }
    return this.#admit(principal);
  }

  /** Every credential kind ends here: the authoriser may refuse the principal as a whole. */
  #admit(principal: Principal): Authentication {
    const refusal = this.authorizer.admit?.(principal) ?? null;
    if (refusal === null) return { ok: true, principal };
    return {
      ok: false,
      status: 403,
      code: "forbidden",
      message: `principal '${principal.id}' may not act: ${refusal.reason}`,
      reason: refusal.reason,
      principal: principal.id,
      rule: refusal.rule,
    };
  }

  async #jwt(token: string): Promise<Authentication> {
    const verified = await (this.jwt as JwtVerifier).verify(token);
    if (!verified.ok) return unauthenticated(verified.reason, `the JWT was refused; ${HOW}`);
    const principal = this.authorizer.fromClaims?.(verified.claims, "jwt") ?? null;
    if (principal === null) {
      const sub = typeof verified.claims.sub === "string" ? verified.claims.sub : "?";
      return unauthenticated(
        `JWT of ${sub} from ${String(verified.claims.iss)}: no identity rule of the policy maps its claims`,
        "the JWT is valid but no identity rule of the policy maps it to a principal",
      );
    }
    return this.#admit(principal);
  }

  #certificate(c: Context): Authentication {
    if (!this.clientCerts) {
      return unauthenticated(
        "missing, unknown or expired token",
        this.jwt
          ? `a valid credential is required: ${HOW}`
          : "a valid token is required: send 'Authorization: Bearer <token>' (CUSTOS_TOKEN for the CLI)",
      );
    }
    const cert = clientCertificate(c);
    if (!cert.present) return unauthenticated("no credential (no client certificate)");
    if (!cert.ok) return unauthenticated(cert.reason, `the client certificate was refused; ${HOW}`);
    const principal = this.authorizer.fromClaims?.(cert.claims, "mtls") ?? null;
    if (principal === null) {
      return unauthenticated(
        `client certificate CN=${String(cert.claims.cn)}: no identity rule of the policy maps it`,
        "the client certificate is valid but the policy maps it to no principal",
      );
    }
    return this.#admit(principal);
  }
}
