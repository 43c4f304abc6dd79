/**
 * Per-source rate limits for what anyone can reach without a credential:
 * a token bucket per source address (capacity `burst`, refilled at
 * `perSecond`), answered with `429 rate_limited` and `Retry-After`. The
 * source is the TCP peer address — never a forwarded header a client could
 * pick — with IPv6 addresses counted per /64, since one host commonly holds
 * a whole /64. The table of sources is bounded: past `maxSources`, the least
 * recently seen source is forgotten (a forgotten source starts with a full
 * bucket, which costs at most one burst). No timers: buckets refill lazily
 * when they are next looked at.
 */
import { isIPv6 } from "node:net";
import type { Context } from "hono";

export interface RateLimit {
  /** Requests a source may make at once. */
  burst: number;
  /** Requests per second added back, up to `burst`. */
  perSecond: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();

  constructor(
    private readonly limit: RateLimit,
    private readonly maxSources = 10_000,
    private readonly now: () => number = Date.now,
  ) {
    if (!(Number.isInteger(limit.burst) && limit.burst >= 1)) {
      throw new RangeError(`burst must be a positive integer, got ${limit.burst}`);
    }
    if (!(limit.perSecond > 0 && Number.isFinite(limit.perSecond))) {
      throw new RangeError(`perSecond must be a positive number, got ${limit.perSecond}`);
    }
  }

  #bucket(source: string): Bucket {
    const now = this.now();
    let b = this.#buckets.get(source);
    if (b === undefined) {
      b = { tokens: this.limit.burst, at: now };
    } else {
      b.tokens = Math.min(this.limit.burst, b.tokens + ((now - b.at) / 1000) * this.limit.perSecond);
      b.at = now;
      this.#buckets.delete(source); // re-inserted below: the map's order is least recently seen first
    }
    this.#buckets.set(source, b);
    if (this.#buckets.size > this.maxSources) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
    return b;
  }

  /** Spends one request; 0 when allowed, else the whole seconds until one is (for Retry-After). */
  take(source: string): number {
    const b = this.#bucket(source);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return this.#wait(b);
  }

  /** Like `take` without spending: the seconds until `source` may make a request, 0 if now. */
  peek(source: string): number {
    const b = this.#bucket(source);
    return b.tokens >= 1 ? 0 : this.#wait(b);
  }

  #wait(b: Bucket): number {
    return Math.max(1, Math.ceil((1 - b.tokens) / this.limit.perSecond));
  }
}

/** The caller's address as rate limits and the audit count it: the TCP peer, IPv6 per /64. */
export function sourceAddress(c: Context): string {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  const address = env?.incoming?.socket?.remoteAddress;
  if (address === undefined) return "local"; // app.request() in tests: no socket
  if (address.startsWith("::ffff:") && !isIPv6(address.slice(7))) return address.slice(7);
  if (!isIPv6(address)) return address;
  return `${ipv6Prefix64(address)}::/64`;
}

/** The first four groups of an IPv6 address, expanded. */
function ipv6Prefix64(address: string): string {
  const [head = "", tail = ""] = address.split("%")[0]?.split("::") ?? [];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = address.includes("::") ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t] : h;
  return groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g || "0", 16).toString(16))
    .join(":");
}

/** The 429 answer: JSON, with Retry-After in seconds. */
export function tooManyRequests(c: Context, retryAfter: number, what: string): Response {
  c.header("retry-after", String(retryAfter));
  const message = `too many ${what} from this address; retry after ${retryAfter} s`;
  return c.json({ error: { code: "rate_limited", message } }, 429);
}
