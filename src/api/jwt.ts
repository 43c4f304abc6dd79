/**
 * Bearer JWTs from the hospitals' identity providers, verified with `jose`
 * against configured keys (a JWKS file read once at start, or a JWKS URL
 * that jose fetches and caches, refetching for an unknown `kid`). Only
 * asymmetric algorithms are accepted — RS256, ES256, EdDSA — so `alg: none`
 * and HS256 with a public key as the secret are refused by construction;
 * issuer and audience must match, `exp`/`nbf` are checked with a small
 * clock skew, and `exp` is required (a token that never expires is a
 * password). The verifier answers with the claims or with the reason of the
 * refusal, which goes to the audit; mapping claims to a principal is the
 * policy's business (src/policy/identity.ts).
 */
import { readFileSync } from "node:fs";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import { z } from "zod";

export const JWT_ALGORITHMS = ["RS256", "ES256", "EdDSA"];
/** Clock skew tolerated on exp, nbf and iat, in seconds. */
export const JWT_CLOCK_SKEW_SECONDS = 30;
const JWT_RE = /^[A-Za-z0-9_-]{2,4096}\.[A-Za-z0-9_-]{2,8192}\.[A-Za-z0-9_-]{0,1024}$/;

export interface JwtOptions {
  /** A JWKS document on disk. */
  jwksFile?: string;
  /** A JWKS endpoint (https, or http on loopback for tests). */
  jwksUrl?: string;
  issuer: string;
  audience: string;
}

const JwksSchema = z.object({
  keys: z.array(z.looseObject({ kty: z.string() })).min(1, "a JWKS needs at least one key"),
});

/** True when a bearer credential has a JWS compact form; `cst_` tokens never do. */
export function isJwtShaped(token: string): boolean {
  return JWT_RE.test(token);
}

export type JwtResult = { ok: true; claims: JWTPayload } | { ok: false; reason: string };

export class JwtVerifier {
  readonly #keys: JWTVerifyGetKey;

  private constructor(
    keys: JWTVerifyGetKey,
    private readonly issuer: string,
    private readonly audience: string,
  ) {
    this.#keys = keys;
  }

  /** Checks the options once; throws a RangeError naming the flag at fault. */
  static fromOptions(opts: JwtOptions): JwtVerifier {
    if ((opts.jwksFile === undefined) === (opts.jwksUrl === undefined)) {
      throw new RangeError("give exactly one of --jwks-file and --jwks-url");
    }
    if (!opts.issuer) throw new RangeError("--jwt-issuer is required with JWT keys");
    if (!opts.audience) throw new RangeError("--jwt-audience is required with JWT keys");
    if (opts.jwksFile !== undefined) {
      let parsed: JSONWebKeySet;
      try {
        parsed = JwksSchema.parse(JSON.parse(readFileSync(opts.jwksFile, "utf8"))) as JSONWebKeySet;
      } catch (err) {
        const why =
          err instanceof z.ZodError ? err.issues.map((i) => i.message).join("; ") : (err as Error).message;
        throw new RangeError(`--jwks-file ${opts.jwksFile}: not a JWKS (${why})`);
      }
      return new JwtVerifier(createLocalJWKSet(parsed), opts.issuer, opts.audience);
    }
    let url: URL;
    try {
      url = new URL(opts.jwksUrl as string);
    } catch {
      throw new RangeError(`--jwks-url '${opts.jwksUrl}' is not a URL`);
    }
    const loopback = ["127.0.0.1", "[::1]", "localhost"].includes(url.hostname);
    if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
      throw new RangeError("--jwks-url must be https (http only on loopback)");
    }
    return new JwtVerifier(
      createRemoteJWKSet(url, { timeoutDuration: 5000, cooldownDuration: 30_000 }),
      opts.issuer,
      opts.audience,
    );
  }

  async verify(token: string): Promise<JwtResult> {
    try {
      const { payload } = await jwtVerify(token, this.#keys, {
        algorithms: JWT_ALGORITHMS,
        issuer: this.issuer,
        audience: this.audience,
        clockTolerance: JWT_CLOCK_SKEW_SECONDS,
        requiredClaims: ["exp"],
      });
      return { ok: true, claims: payload };
    } catch (err) {
      // jose's codes (ERR_JWT_EXPIRED, ERR_JWKS_NO_MATCHING_KEY, …) are stable and say enough for the audit.
      const code = (err as { code?: unknown }).code;
      return {
        ok: false,
        reason: `JWT refused: ${typeof code === "string" ? code : "invalid"}: ${(err as Error).message}`,
      };
    }
  }
}
