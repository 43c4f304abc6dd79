/**
 * The auditor's check of what witnesses signed against the node's own log
 * (docs/FORMATS.md §8.3), used by `custos audit verify`. The auditor already
 * holds every event, so the strongest check is also the simplest: rebuild the
 * tree and compute the root at each size a witness countersigned; the same
 * size must give the same root (else the node forked its log), and no witness
 * may have seen more events than the node now has (else it rolled back).
 * Every countersignature is verified, against the auditor's pinned witness
 * keys when given. Problems name the size, the witness and both roots, and are
 * sorted by size so the first one is the first bad index. These functions do
 * no I/O; the CLI fetches the witnesses' views and the node's proofs.
 */
import { b64u, constantTimeEqual, hex, utf8 } from "../crypto/bytes.js";
import { type Cosignature, cosignatureFromJson, verifyCosignature } from "./cosignature.js";
import { leafHash } from "./merkle.js";
import { CompactRange } from "./merkle-log.js";
import { type TreeHeadJson, treeHeadFromJson, verifyTreeHead } from "./tree-head.js";
import type { WitnessPublicKey } from "./witness-key.js";

export interface WitnessProblem {
  /** The size (number of events) the problem is about. */
  size: number;
  witness: string;
  problem: string;
}

/** Orders problems by size, those about no particular size (0) last. */
export function bySize(a: WitnessProblem, b: WitnessProblem): number {
  return (a.size || Number.MAX_SAFE_INTEGER) - (b.size || Number.MAX_SAFE_INTEGER);
}

/** Roots of the trees of the first `n` events, for each requested `n` ≤ events.length, in one pass. */
export function rootsAtSizes(
  events: readonly { canonical: string }[],
  sizes: Iterable<number>,
): Map<number, Uint8Array> {
  const wanted = new Set([...sizes].filter((n) => Number.isSafeInteger(n) && n >= 1 && n <= events.length));
  const out = new Map<number, Uint8Array>();
  if (wanted.size === 0) return out;
  const last = Math.max(...wanted);
  const range = new CompactRange();
  for (let i = 0; i < last; i++) {
    range.append(leafHash(utf8(events[i]!.canonical)));
    if (wanted.has(i + 1)) out.set(i + 1, range.root());
  }
  return out;
}

/** The name to report for a witness key: the auditor's pin if there is one, else what the witness calls itself. */
function nameOf(c: Cosignature, pins: readonly WitnessPublicKey[] | undefined): string {
  const pin = pins?.find((p) => constantTimeEqual(p.publicKey, c.witnessKey));
  return pin ? pin.witness : `${c.witness} (unpinned key ${b64u.encode(c.witnessKey).slice(0, 11)}…)`;
}

/** What the auditor knows of the node's log, that witnesses' signatures are checked against. */
export interface LogFacts {
  /** The node's audit public key: the log's identity. */
  logKey: Uint8Array;
  /** Roots of the node's events at the sizes witnesses signed (rootsAtSizes). */
  roots: ReadonlyMap<number, Uint8Array>;
  /** How many events the node's log holds. */
  eventCount: number;
  /** The auditor's pinned witness keys, if any. */
  pins?: readonly WitnessPublicKey[] | undefined;
}

/**
 * Checks one countersignature: well formed, by a pinned witness (if pins are
 * given), for this log, verifying, and on the root the node's events give at
 * its size. Returns the problem, or null.
 */
export function checkCosignature(json: unknown, log: LogFacts): WitnessProblem | null {
  const { logKey, roots, eventCount, pins } = log;
  let c: Cosignature;
  try {
    c = cosignatureFromJson(json);
  } catch (err) {
    const size = (json as { size?: unknown } | null)?.size;
    return {
      size: typeof size === "number" ? size : 0,
      witness: "?",
      problem: `malformed countersignature: ${(err as Error).message}`,
    };
  }
  const witness = nameOf(c, pins);
  const at = (problem: string): WitnessProblem => ({ size: c.size, witness, problem });
  if (pins && !pins.some((p) => constantTimeEqual(p.publicKey, c.witnessKey))) {
    return at(`countersignature by ${witness}, which is not among the pinned --witness-key files`);
  }
  if (!constantTimeEqual(c.log, logKey)) return at(`countersignature by ${witness} is for another log`);
  if (!verifyCosignature(c)) return at(`bad countersignature by ${witness} on the head of size ${c.size}`);
  if (c.size > eventCount) {
    return at(
      `rollback: witness ${witness} countersigned size ${c.size} but the node's log has only ${eventCount} events`,
    );
  }
  const root = roots.get(c.size);
  if (root === undefined || !constantTimeEqual(root, c.root)) {
    return at(
      `forked head at size ${c.size}: node root ${root ? hex.encode(root) : "?"}, witness ${witness} signed root ${hex.encode(c.root)}`,
    );
  }
  return null;
}

export interface WitnessView {
  url: string;
  /** What the witness calls itself (its status), for messages. */
  name: string;
  /** Every head the witness countersigned for this log, as served. */
  heads: { head: TreeHeadJson; cosignature: unknown }[];
  /** The witness's own alarm about this log, if it raised one. */
  alarm: { kind: string; detail: string } | null;
}

export interface WitnessViewCheck {
  url: string;
  witness: string;
  heads: number;
  /** The newest head the witness countersigned and that checked out. */
  latest: { size: number; root: Uint8Array } | null;
  problems: WitnessProblem[];
}

/** Checks a witness's whole view of the log against the node's events. */
export function checkWitnessView(view: WitnessView, log: LogFacts): WitnessViewCheck {
  const { logKey } = log;
  const problems: WitnessProblem[] = [];
  let latest: WitnessViewCheck["latest"] = null;
  for (const { head: served, cosignature } of view.heads) {
    const problem = checkCosignature(cosignature, log);
    if (problem) {
      problems.push(problem);
      continue;
    }
    // The witness's copy of the node's head must carry the node's own valid signature.
    let ok = false;
    try {
      const { head, publicKey } = treeHeadFromJson(served);
      ok = constantTimeEqual(publicKey, logKey) && verifyTreeHead(publicKey, head);
      if (ok && (!latest || head.size > latest.size)) latest = { size: head.size, root: head.root };
    } catch {
      ok = false;
    }
    if (!ok) {
      problems.push({
        size: served?.size ?? 0,
        witness: view.name,
        problem: `witness ${view.name} holds a head of size ${served?.size} without the node's valid signature`,
      });
    }
  }
  if (view.alarm) {
    problems.push({
      size: 0,
      witness: view.name,
      problem: `witness ${view.name} raised an alarm about this log (${view.alarm.kind}): ${view.alarm.detail}`,
    });
  }
  problems.sort(bySize);
  return { url: view.url, witness: view.name, heads: view.heads.length, latest, problems };
}
