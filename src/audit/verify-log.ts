/**
 * The auditor's end-to-end check of a copy of the log, in one pass over the
 * events' canonical text: each event's chain hash (docs/FORMATS.md §8) and
 * its RFC 9162 leaf, folded into the root at the signed head's size (§8.1).
 * It hashes exactly the bytes that were signed and chained — the event a
 * reader shows is parsed from the same text — so nothing needs
 * re-serialising. A break names the first event that does not chain
 * (altered, deleted or reordered all show there, told apart by
 * chain-break.ts) and any problem with the head.
 *
 * The loop is built for a million events in well under the 5 s target on one
 * thread (bench/audit.ts, bench/RESULTS.md). A profile showed the time going
 * not into SHA-256 but around it: a `createHash` object per hash and, above
 * all, a fresh Buffer for every digest (about 1 µs each, three per event).
 * So each hash is one `crypto.hash` call over a reused scratch buffer, and
 * digests come back as strings — hex for the chain, compared with the stored
 * hex as is; "binary" (latin1, one char per byte) for leaves and Merkle
 * nodes, written back into a scratch buffer for the next node. Each link is checked against
 * the stored hash before it, which equals the recomputed one until the first
 * break, so the first bad event is the same as with a recomputed chain.
 */
import { hash } from "node:crypto";
import { b64u, constantTimeEqual } from "../crypto/bytes.js";
import { type ChainBreakKind, classifyChainBreak } from "./chain-break.js";
import type { ChainedAuditEvent } from "./event.js";
import { type TreeHeadJson, treeHeadFromJson, verifyTreeHead } from "./tree-head.js";

const CHAIN_LABEL = "custos/audit/v1";
/** Chain preimage layout in the scratch buffer: label ‖ u64be(seq) ‖ hash_{n-1} ‖ event. */
const SEQ_AT = CHAIN_LABEL.length;
const PREV_AT = SEQ_AT + 8;
/** Where a caller of LogFold.add puts the event's bytes in its scratch buffer. */
export const EVENT_AT = PREV_AT + 32;

export interface LogCheck {
  events: number;
  chain:
    | { ok: true; head: string | null }
    | { ok: false; seq: number; kind: ChainBreakKind; problem: string };
  head: HeadCheck | null;
}

export function verifyLog(
  events: readonly Pick<ChainedAuditEvent, "canonical" | "hash">[],
  served: TreeHeadJson | null,
  pinnedKey?: Uint8Array,
): LogCheck {
  const fold = new LogFold(served?.size ?? 0);
  for (const e of events) {
    // UTF-8 takes at most 3 bytes per UTF-16 unit: room before writing, never truncate.
    const scratch = fold.room(e.canonical.length * 3);
    if (!fold.add(EVENT_AT + scratch.write(e.canonical, EVENT_AT, "utf8"), e.hash)) break;
  }
  const broken = fold.brokenAt;
  return {
    events: events.length,
    chain:
      broken < 0
        ? { ok: true, head: events.at(-1)?.hash ?? null }
        : { ok: false, ...classifyChainBreak(events, broken) },
    head: served === null ? null : headAgainstRoot(served, events.length, fold.signedRoot, pinnedKey),
  };
}

/**
 * The one-pass fold behind verifyLog, for callers that have each event's
 * bytes rather than its text (export-scan.ts): write the event at EVENT_AT
 * of `room(n)`, then `add(end, storedHash)`. It chains each event on the
 * stored hash before it and folds leaves up to the head's size (and any
 * `rootSizes`, whose roots it keeps).
 */
export class LogFold {
  #scratch = Buffer.alloc(EVENT_AT + 4096);
  #tree = new LeafFold();
  #count = 0;
  #size: number;
  #leafLimit: number;
  #rootSizes: ReadonlySet<number>;
  /** 0-based index of the first event that does not chain, or -1. */
  brokenAt = -1;
  /** Root of the first `size` events, once folded. */
  signedRoot: Uint8Array | null = null;
  readonly roots = new Map<number, Uint8Array>();

  constructor(size: number, rootSizes: ReadonlySet<number> = new Set()) {
    this.#size = size;
    this.#rootSizes = rootSizes;
    this.#leafLimit = Math.max(size, ...rootSizes);
    this.#scratch.write(CHAIN_LABEL, 0, "ascii");
  }

  get count(): number {
    return this.#count;
  }

  /** The scratch buffer, with room for `bytes` of event at EVENT_AT. */
  room(bytes: number): Buffer {
    if (EVENT_AT + bytes > this.#scratch.length) {
      const bigger = Buffer.alloc(EVENT_AT + bytes);
      this.#scratch.copy(bigger, 0, 0, EVENT_AT);
      this.#scratch = bigger;
    }
    return this.#scratch;
  }

  /** Takes the event at scratch[EVENT_AT, end); false once nothing more can change the outcome. */
  add(end: number, storedHash: string): boolean {
    const scratch = this.#scratch;
    const n = ++this.#count;
    if (this.brokenAt < 0) {
      scratch.writeUInt32BE(Math.floor(n / 2 ** 32), SEQ_AT);
      scratch.writeUInt32BE(n >>> 0, SEQ_AT + 4);
      if (hash("sha256", scratch.subarray(0, end), "hex") !== storedHash) this.brokenAt = n - 1;
    }
    if (n <= this.#leafLimit) {
      // The leaf preimage 0x00 ‖ event borrows the byte before the event;
      // it is overwritten with the next link's previous hash below.
      scratch[EVENT_AT - 1] = 0x00;
      this.#tree.append(hash("sha256", scratch.subarray(EVENT_AT - 1, end), "binary"));
      if (n === this.#size) this.signedRoot = this.#tree.root();
      if (this.#rootSizes.has(n)) this.roots.set(n, this.#tree.root());
    }
    if (this.brokenAt < 0) scratch.write(storedHash, PREV_AT, "hex");
    else if (n >= this.#leafLimit) return false;
    return true;
  }
}

/**
 * RFC 9162 tree head over leaf hashes appended one by one: the roots of the
 * perfect subtrees so far, merged like carries in binary addition (the same
 * fold as merkle-log.ts's CompactRange), on latin1 digest strings.
 */
class LeafFold {
  #stack: string[] = [];
  #size = 0;
  #node = Buffer.alloc(65);

  append(leaf: string): void {
    this.#size++;
    let h = leaf;
    for (let n = this.#size; n % 2 === 0; n /= 2) h = this.#nodeHash(this.#stack.pop()!, h);
    this.#stack.push(h);
  }

  root(): Uint8Array {
    let r = this.#stack.at(-1)!;
    for (let i = this.#stack.length - 2; i >= 0; i--) r = this.#nodeHash(this.#stack[i]!, r);
    return new Uint8Array(Buffer.from(r, "latin1"));
  }

  /** SHA-256(0x01 ‖ left ‖ right). */
  #nodeHash(left: string, right: string): string {
    this.#node[0] = 0x01;
    this.#node.write(left, 1, "latin1");
    this.#node.write(right, 33, "latin1");
    return hash("sha256", this.#node, "binary");
  }
}

export type HeadProblem =
  | "wrong_key"
  | "bad_signature"
  | "truncated_log"
  | "altered_events"
  | "malformed_head";

export type HeadCheck =
  | { ok: true; size: number; keyId: string }
  | { ok: false; problem: HeadProblem; detail: string };

/** `rootAtSize` is the root of the copy's first `served.size` events, or null when it has fewer. */
export function headAgainstRoot(
  served: TreeHeadJson,
  eventCount: number,
  rootAtSize: Uint8Array | null,
  pinnedKey?: Uint8Array,
): HeadCheck {
  let parsed: ReturnType<typeof treeHeadFromJson>;
  try {
    parsed = treeHeadFromJson(served);
  } catch (err) {
    return { ok: false, problem: "malformed_head", detail: (err as Error).message };
  }
  const { head, publicKey } = parsed;
  if (pinnedKey && !constantTimeEqual(pinnedKey, publicKey)) {
    return {
      ok: false,
      problem: "wrong_key",
      detail: "the head is signed by another key than the pinned audit key",
    };
  }
  if (!verifyTreeHead(publicKey, head)) {
    return {
      ok: false,
      problem: "bad_signature",
      detail: `the signature on the head of size ${head.size} does not verify`,
    };
  }
  if (rootAtSize === null || eventCount < head.size) {
    return {
      ok: false,
      problem: "truncated_log",
      detail: `the head covers ${head.size} events but the log has ${eventCount}`,
    };
  }
  if (!constantTimeEqual(rootAtSize, head.root)) {
    return {
      ok: false,
      problem: "altered_events",
      detail: `the first ${head.size} events do not hash to the signed root`,
    };
  }
  return { ok: true, size: head.size, keyId: b64u.encode(publicKey) };
}

export function checkHead(
  events: readonly Pick<ChainedAuditEvent, "canonical" | "hash">[],
  served: TreeHeadJson,
  pinnedKey?: Uint8Array,
): HeadCheck {
  return verifyLog(events, served, pinnedKey).head!;
}
