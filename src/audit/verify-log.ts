/**
 * The auditor's end-to-end check of a copy of the log, in one pass over the
 * events' canonical text: each event's chain hash (docs/FORMATS.md §8) and
 * its RFC 9162 leaf, folded into the root at the signed head's size (§8.1).
 * It hashes exactly the bytes that were signed and chained — the event a
 * reader shows is parsed from the same text — so nothing needs
 * re-serialising, and a million events verify in seconds. A break names the
 * first event that does not chain (altered, deleted or reordered all show
 * there) and any problem with the head.
 */
import { createHash } from "node:crypto";
import { b64u, constantTimeEqual, hex, u64be } from "../crypto/bytes.js";
import type { ChainedAuditEvent } from "./event.js";
import { CompactRange } from "./merkle-log.js";
import { type TreeHeadJson, treeHeadFromJson, verifyTreeHead } from "./tree-head.js";

const CHAIN_LABEL = Buffer.from("custos/audit/v1");
const LEAF_PREFIX = Buffer.from([0x00]);

export interface LogCheck {
  events: number;
  chain: { ok: true; head: string | null } | { ok: false; seq: number; problem: string };
  head: HeadCheck | null;
}

export function verifyLog(
  events: readonly Pick<ChainedAuditEvent, "canonical" | "hash">[],
  served: TreeHeadJson | null,
  pinnedKey?: Uint8Array,
): LogCheck {
  const size = served?.size;
  const range = new CompactRange();
  let prev: Uint8Array = new Uint8Array(32);
  let signedRoot: Uint8Array | null = null;
  let chain: LogCheck["chain"] | null = null;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    const bytes = Buffer.from(e.canonical, "utf8");
    const hash = createHash("sha256")
      .update(CHAIN_LABEL)
      .update(u64be(i + 1))
      .update(prev)
      .update(bytes)
      .digest();
    if (chain === null && hash.toString("hex") !== e.hash) {
      chain = {
        ok: false,
        seq: i + 1,
        problem: `event ${i + 1} does not chain: altered, deleted or reordered`,
      };
    }
    prev = hash;
    if (size !== undefined && i < size) {
      range.append(createHash("sha256").update(LEAF_PREFIX).update(bytes).digest());
      if (i === size - 1) signedRoot = range.root();
    }
  }
  const head = served === null ? null : headAgainstRoot(served, events.length, signedRoot, pinnedKey);
  return {
    events: events.length,
    chain: chain ?? { ok: true, head: events.length ? hex.encode(prev) : null },
    head,
  };
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
