/**
 * An auditor's check of a signed tree head against a copy of the events:
 * each kind of tampering is told apart — altered event, truncated log, bad
 * signature, a head signed by another key than the pinned one.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { appendEvent, type ChainHead, GENESIS_HASH } from "../../src/audit/chain.js";
import type { ChainedAuditEvent } from "../../src/audit/event.js";
import { leafHash, treeHead } from "../../src/audit/merkle.js";
import { auditPublicKey, signTreeHead, treeHeadToJson } from "../../src/audit/tree-head.js";
import { checkHead } from "../../src/audit/verify-log.js";
import { Secret } from "../../src/crypto/secret.js";

function log(n: number): ChainedAuditEvent[] {
  let head: ChainHead = { seq: 0, hash: GENESIS_HASH };
  const out: ChainedAuditEvent[] = [];
  for (let i = 0; i < n; i++) {
    const next = appendEvent(head, {
      time: "2026-11-24T10:00:00.000Z",
      principal: `p${i}`,
      operation: "keys.decrypt",
      decision: "allow",
      purpose: "TREAT",
    });
    out.push(next.chained);
    head = next.head;
  }
  return out;
}

describe("checkHead", () => {
  const key = Secret.of(ed25519.utils.randomSecretKey());
  const publicKey = auditPublicKey(key);
  const events = log(10);
  const enc = new TextEncoder();
  const root = treeHead(events.slice(0, 8).map((e) => leafHash(enc.encode(e.canonical))));
  const served = treeHeadToJson(signTreeHead(key, 8, 1_700_000_000_000, root), publicKey);

  it("accepts the events the head was signed over (and later ones)", () => {
    expect(checkHead(events, served)).toMatchObject({ ok: true, size: 8 });
    expect(checkHead(events, served, publicKey)).toMatchObject({ ok: true });
  });

  it("names an altered event, a truncated log, a bad signature and a foreign key", () => {
    const altered = events.map((e, i) =>
      i === 3 ? { ...e, canonical: e.canonical.replace("TREAT", "HPAYMT") } : e,
    );
    expect(checkHead(altered, served)).toMatchObject({ ok: false, problem: "altered_events" });
    const swapped = [events[1]!, events[0]!, ...events.slice(2)];
    expect(checkHead(swapped, served)).toMatchObject({ ok: false, problem: "altered_events" });
    expect(checkHead(events.slice(0, 7), served)).toMatchObject({ ok: false, problem: "truncated_log" });
    expect(checkHead(events, { ...served, size: 9 })).toMatchObject({ ok: false, problem: "bad_signature" });
    const other = auditPublicKey(Secret.of(ed25519.utils.randomSecretKey()));
    expect(checkHead(events, served, other)).toMatchObject({ ok: false, problem: "wrong_key" });
    expect(checkHead(events, { ...served, rootHash: "zz" })).toMatchObject({
      ok: false,
      problem: "malformed_head",
    });
  });
});
