/**
 * Checks a signed tree head against a copy of the events, as an auditor does:
 * the signature under the audit key (pinned by the auditor, or as served),
 * then the RFC 9162 root recomputed from the events' own canonical JSON over
 * the first `size` events. It trusts nothing the node computed: leaf hashes
 * are rebuilt from the events, not taken from the server.
 */
import { b64u, constantTimeEqual } from "../crypto/bytes.js";
import { canonicalJson } from "./chain.js";
import type { ChainedAuditEvent } from "./event.js";
import { leafHash, treeHead } from "./merkle.js";
import { type TreeHeadJson, treeHeadFromJson, verifyTreeHead } from "./tree-head.js";

export type HeadProblem =
  | "wrong_key"
  | "bad_signature"
  | "truncated_log"
  | "altered_events"
  | "malformed_head";

export type HeadCheck =
  | { ok: true; size: number; keyId: string }
  | { ok: false; problem: HeadProblem; detail: string };

export function checkHead(
  events: readonly ChainedAuditEvent[],
  served: TreeHeadJson,
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
  if (events.length < head.size) {
    return {
      ok: false,
      problem: "truncated_log",
      detail: `the head covers ${head.size} events but the log has ${events.length}`,
    };
  }
  const encoder = new TextEncoder();
  const leaves = events.slice(0, head.size).map((e) => leafHash(encoder.encode(canonicalJson(e.event))));
  if (!constantTimeEqual(treeHead(leaves), head.root)) {
    return {
      ok: false,
      problem: "altered_events",
      detail: `the first ${head.size} events do not hash to the signed root`,
    };
  }
  return { ok: true, size: head.size, keyId: b64u.encode(publicKey) };
}
