/**
 * What the API does about callers it cannot name. Their refusals are
 * counted per source address and reason (audit/denial-tally.ts) instead of
 * each becoming a permanent event, and each spends from the source's
 * budget; a source that has spent it is answered `429` without further
 * work until the budget refills — unless the request carries a credential,
 * so a service sharing an address with a noisy neighbour is not locked out
 * (a bad credential is refused and counted like any anonymous request). A
 * refused request that carries a credential is authenticated here to tell
 * an identified caller (its own event, as always) from an anonymous one.
 * The node's own repository read, which anyone may trigger, has a budget of
 * its own (docs/FORMATS.md §8.4, README "Limits").
 */
import type { Context, MiddlewareHandler } from "hono";
import type { DenialTally } from "../audit/denial-tally.js";
import type { Authenticator } from "./authenticate.js";
import { clientCertificate } from "./client-cert.js";
import { type RateLimit, RateLimiter, sourceAddress, tooManyRequests } from "./rate-limit.js";

export interface AnonymousLimits {
  /** Refused anonymous requests per source address. */
  denials: RateLimit;
  /** `POST /v1/sys/unseal/repositories` per source address. */
  repositoryReads: RateLimit;
}

export const DEFAULT_ANONYMOUS_LIMITS: AnonymousLimits = {
  denials: { burst: 60, perSecond: 1 },
  repositoryReads: { burst: 3, perSecond: 0.1 },
};

export class AnonymousGuard {
  readonly #denials: RateLimiter;
  readonly #repositoryReads: RateLimiter;

  constructor(
    readonly tally: DenialTally,
    limits: Partial<AnonymousLimits> = {},
  ) {
    this.#denials = new RateLimiter(limits.denials ?? DEFAULT_ANONYMOUS_LIMITS.denials);
    this.#repositoryReads = new RateLimiter(
      limits.repositoryReads ?? DEFAULT_ANONYMOUS_LIMITS.repositoryReads,
    );
  }

  /** Answers 429 to a request without a credential from a source that has spent its budget of refusals. */
  readonly limitAnonymous: MiddlewareHandler = async (c, next) => {
    if (carriesCredential(c)) return next();
    const wait = this.#denials.peek(sourceAddress(c));
    if (wait > 0) return tooManyRequests(c, wait, "refused requests");
    return next();
  };

  /** The budget of `POST /v1/sys/unseal/repositories`, per source. */
  readonly limitRepositoryReads: MiddlewareHandler = async (c, next) => {
    const wait = this.#repositoryReads.take(sourceAddress(c));
    if (wait > 0) return tooManyRequests(c, wait, "repository reads");
    return next();
  };

  /**
   * A refused request whose caller is not identified: spends from its
   * source's budget, and is counted for the aggregate event unless it
   * already has an event of its own (a refused unseal share).
   */
  refused(c: Context, reason: string, hasEvent: boolean): void {
    const source = sourceAddress(c);
    this.#denials.take(source);
    if (!hasEvent) this.tally.count(source, reason);
  }

  /** The principal of a refused request that carries a credential, if it authenticates. */
  async identify(c: Context, authenticator: Authenticator): Promise<string | undefined> {
    if (!carriesCredential(c) || c.get("unauthenticated")) return undefined;
    const who = await authenticator.authenticate(c).catch(() => null);
    if (who === null) return undefined;
    return who.ok ? who.principal.id : who.principal;
  }
}

function carriesCredential(c: Context): boolean {
  return c.req.header("authorization") !== undefined || clientCertificate(c).present;
}
