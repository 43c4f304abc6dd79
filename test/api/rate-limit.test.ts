/**
 * The per-source token bucket behind the 429s of unidentified callers and
 * of the repository read: burst, refill, Retry-After, the bounded table of
 * sources, IPv6 counted per /64, and refused limits.
 */
import { describe, expect, it } from "vitest";
import { RateLimiter, sourceAddress } from "../../src/api/rate-limit.js";

describe("RateLimiter", () => {
  it("allows a burst, then asks to wait until the bucket refills", () => {
    let now = 0;
    const limiter = new RateLimiter({ burst: 3, perSecond: 0.5 }, 100, () => now);
    expect([1, 2, 3].map(() => limiter.take("a"))).toEqual([0, 0, 0]);
    expect(limiter.take("a")).toBe(2); // one token in 2 s
    expect(limiter.peek("b")).toBe(0); // another source has its own bucket
    now += 2000;
    expect(limiter.peek("a")).toBe(0);
    expect(limiter.take("a")).toBe(0);
    expect(limiter.take("a")).toBe(2);
  });

  it("forgets the least recently seen source past its table size (which then starts full)", () => {
    const limiter = new RateLimiter({ burst: 1, perSecond: 0.001 }, 2, () => 0);
    expect(limiter.take("a")).toBe(0);
    expect(limiter.take("b")).toBe(0);
    expect(limiter.take("a")).toBeGreaterThan(0); // a is now the most recent
    expect(limiter.take("c")).toBe(0); // b is forgotten
    expect(limiter.take("a")).toBeGreaterThan(0);
    expect(limiter.take("b")).toBe(0);
  });

  it("refuses limits that would not limit", () => {
    expect(() => new RateLimiter({ burst: 0, perSecond: 1 })).toThrow(RangeError);
    expect(() => new RateLimiter({ burst: 1.5, perSecond: 1 })).toThrow(/burst/);
    expect(() => new RateLimiter({ burst: 1, perSecond: 0 })).toThrow(/perSecond/);
    expect(() => new RateLimiter({ burst: 1, perSecond: Number.POSITIVE_INFINITY })).toThrow(/perSecond/);
  });
});

describe("sourceAddress", () => {
  const ctx = (remoteAddress?: string) =>
    ({ env: remoteAddress === undefined ? undefined : { incoming: { socket: { remoteAddress } } } }) as never;
  it("counts IPv4 as is, IPv4-mapped IPv6 as IPv4, and IPv6 per /64", () => {
    expect(sourceAddress(ctx("10.1.2.3"))).toBe("10.1.2.3");
    expect(sourceAddress(ctx("::ffff:127.0.0.1"))).toBe("127.0.0.1");
    expect(sourceAddress(ctx("2001:db8:1:2:aaaa::1"))).toBe("2001:db8:1:2::/64");
    expect(sourceAddress(ctx("2001:db8:1:2:bbbb:cccc:dddd:eeee"))).toBe("2001:db8:1:2::/64");
    expect(sourceAddress(ctx("2001:db8::1"))).toBe("2001:db8:0:0::/64");
    expect(sourceAddress(ctx("::1"))).toBe("0:0:0:0::/64");
    expect(sourceAddress(ctx())).toBe("local");
  });
});
