/**
 * Requests refused before anyone was identified — no credential or a bad
 * one, an unknown route, malformed input to a public route, a sealed node,
 * a rate limit — are counted here rather than written one event each:
 * anyone can send them, and a permanent event per request would let anyone
 * fill the disk that every key operation needs. Every interval (and at
 * shutdown) the counts become one `http.anonymous-denials` event per
 * (source address, status and code), carrying the count and the first and
 * last time seen (docs/FORMATS.md §8.4). Refusals of identified callers are
 * not counted here: they keep their own event. The table is bounded; past
 * `maxEntries` pairs, new sources are counted under the source `other`. A
 * crash loses at most one interval of counts, never an event of an
 * identified caller.
 */
import type { Logger } from "pino";
import type { Auditor } from "./auditor.js";

export const ANONYMOUS_DENIALS_OPERATION = "http.anonymous-denials";
export const DEFAULT_DENIAL_INTERVAL_MS = 60_000;

interface Tally {
  source: string;
  reason: string;
  count: number;
  first: string;
  last: string;
}

/** The `reason` of an aggregate event (docs/FORMATS.md §8.4). */
export function aggregateReason(t: Tally): string {
  return `${t.count} request(s) from ${t.source} refused ${t.reason} between ${t.first} and ${t.last}`;
}

export class DenialTally {
  #tallies = new Map<string, Tally>();
  #timer: ReturnType<typeof setInterval> | null = null;
  #flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly auditor: Auditor,
    private readonly intervalMs = DEFAULT_DENIAL_INTERVAL_MS,
    private readonly log?: Pick<Logger, "error">,
    private readonly maxEntries = 10_000,
    private readonly now: () => Date = () => new Date(),
  ) {
    if (!(intervalMs >= 100)) throw new RangeError(`intervalMs must be at least 100, got ${intervalMs}`);
  }

  /** One refused request from `source`, `reason` being its status and code (`404 not_found`). */
  count(source: string, reason: string): void {
    let key = `${source}\n${reason}`;
    if (!this.#tallies.has(key) && this.#tallies.size >= this.maxEntries) {
      source = "other";
      key = `${source}\n${reason}`;
    }
    const time = this.now().toISOString();
    const t = this.#tallies.get(key);
    if (t) {
      t.count += 1;
      t.last = time;
    } else {
      this.#tallies.set(key, { source, reason, count: 1, first: time, last: time });
    }
  }

  start(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => void this.flush(), this.intervalMs);
    this.#timer.unref();
  }

  /** Writes the counts so far, one event per (source, reason), in one append; kept for the next try if that fails. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      if (this.#tallies.size === 0) return;
      const tallies = [...this.#tallies.values()];
      this.#tallies = new Map();
      try {
        await this.auditor.record(
          ...tallies.map((t) =>
            this.auditor.event({
              principal: "anonymous",
              operation: ANONYMOUS_DENIALS_OPERATION,
              decision: "deny",
              reason: aggregateReason(t),
            }),
          ),
        );
      } catch (err) {
        this.log?.error(
          { err },
          "could not audit the anonymous refusals; their counts are kept for the next try",
        );
        for (const t of tallies) this.#merge(t);
      }
    });
    return this.#flushing;
  }

  #merge(t: Tally): void {
    const key = `${t.source}\n${t.reason}`;
    const now = this.#tallies.get(key);
    if (now) {
      now.count += t.count;
      now.first = t.first;
    } else if (this.#tallies.size < this.maxEntries) {
      this.#tallies.set(key, t);
    }
  }

  /** Stops the timer and writes what is left (shutdown). */
  async close(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.flush();
  }
}
