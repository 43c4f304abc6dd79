/**
 * What kind of break the first unchained event is — altered, deleted or
 * reordered — told from the `seq` each event's canonical text claims
 * (docs/FORMATS.md §8: leaf i is the event with seq i + 1). It runs only once
 * the chain is already broken, so it may parse events; it never decides
 * whether the log is valid, only how the verdict is worded.
 *
 * At position p (1-based) the event claims seq s:
 *  - s = p: the event is in its place but does not hash to its chain hash:
 *    its text (or its stored hash) was altered;
 *  - s > p and no later event claims a seq below s: events p..s-1 are gone;
 *  - otherwise (s < p, or an earlier event turns up later): reordered.
 * A claim that cannot be read (not JSON, no integer seq) counts as altered.
 */

export type ChainBreakKind = "altered" | "deleted" | "reordered";

export interface ChainBreak {
  kind: ChainBreakKind;
  /** Position (1-based) of the first event that does not chain. */
  seq: number;
  problem: string;
}

function claimedSeq(canonical: string): number | null {
  try {
    const seq = (JSON.parse(canonical) as { seq?: unknown }).seq;
    return Number.isSafeInteger(seq) ? (seq as number) : null;
  } catch {
    return null;
  }
}

/** `index` is the 0-based position of the first event that does not chain. */
export function classifyChainBreak(events: readonly { canonical: string }[], index: number): ChainBreak {
  const p = index + 1;
  const s = claimedSeq(events[index]!.canonical);
  if (s === null || s === p) {
    return {
      kind: "altered",
      seq: p,
      problem: `event ${p} does not chain: altered (its text no longer hashes to its chain hash)`,
    };
  }
  let reordered = s < p;
  for (let i = index + 1; !reordered && i < events.length; i++) {
    const later = claimedSeq(events[i]!.canonical);
    if (later !== null && later < s) reordered = true;
  }
  if (reordered) {
    return {
      kind: "reordered",
      seq: p,
      problem: `event ${p} does not chain: reordered (the event at position ${p} is seq ${s})`,
    };
  }
  const gone = s - 1 === p ? `event ${p} is` : `events ${p}..${s - 1} are`;
  return {
    kind: "deleted",
    seq: p,
    problem: `event ${p} does not chain: deleted (${gone} missing; the next is seq ${s})`,
  };
}
