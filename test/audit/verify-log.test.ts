/**
 * An auditor's check of a signed tree head against a copy of the events:
 * each kind of tampering is told apart — altered event, truncated log, bad
 * signature, a head signed by another key than the pinned one. verifyLog's
 * fast loop is checked against the definitions: on logs with long and
 * non-ASCII events and sizes around powers of two its root equals treeHead
 * over leafHash, and after altering, deleting or reordering events or
 * changing a stored hash it names the first bad event verifyChain (which
 * recomputes every link) names.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { appendEvent, type ChainHead, GENESIS_HASH, verifyChain } from "../../src/audit/chain.js";
import type { ChainedAuditEvent } from "../../src/audit/event.js";
import { leafHash, treeHead } from "../../src/audit/merkle.js";
import { auditPublicKey, signTreeHead, treeHeadToJson } from "../../src/audit/tree-head.js";
import { checkHead, verifyLog } from "../../src/audit/verify-log.js";
import { Secret } from "../../src/crypto/secret.js";

function log(n: number, reason?: (i: number) => string): ChainedAuditEvent[] {
  let head: ChainHead = { seq: 0, hash: GENESIS_HASH };
  const out: ChainedAuditEvent[] = [];
  for (let i = 0; i < n; i++) {
    const next = appendEvent(head, {
      time: "2026-11-24T10:00:00.000Z",
      principal: `p${i}`,
      operation: "keys.decrypt",
      decision: "allow",
      purpose: "TREAT",
      ...(reason ? { reason: reason(i) } : {}),
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

const signer = Secret.of(ed25519.utils.randomSecretKey());
const headOver = (events: ChainedAuditEvent[], size: number) =>
  treeHeadToJson(
    signTreeHead(
      signer,
      size,
      1_700_000_000_000,
      treeHead(events.slice(0, size).map((e) => leafHash(new TextEncoder().encode(e.canonical)))),
    ),
    auditPublicKey(signer),
  );

/** The first bad seq as the step-by-step definition sees it (event re-read from its canonical text). */
function firstBad(events: ChainedAuditEvent[]): number | null {
  const reread = events.map((e) => ({ ...e, event: JSON.parse(e.canonical) as ChainedAuditEvent["event"] }));
  const v = verifyChain(reread);
  return v.ok ? null : v.seq;
}

describe("verifyLog", () => {
  it("folds the same root as the RFC 9162 definition, for sizes around powers of two", () => {
    // Long and non-ASCII events exercise the growing scratch buffer and UTF-8 lengths.
    const events = log(70, (i) => (i % 5 === 0 ? "é€😀".repeat(900 + i) : `r${i}`));
    for (const size of [1, 2, 3, 7, 8, 9, 16, 17, 31, 32, 33, 64, 70]) {
      const check = verifyLog(events, headOver(events, size));
      expect(check.chain).toEqual({ ok: true, head: events.at(-1)!.hash });
      expect(check.head).toMatchObject({ ok: true, size });
    }
    expect(verifyLog([], null)).toEqual({ events: 0, chain: { ok: true, head: null }, head: null });
  });

  it("names the same first bad event as the definition, whatever the tampering", () => {
    const events = log(40);
    const served = headOver(events, 32);
    const cases: [string, ChainedAuditEvent[], string | null][] = [
      [
        "altered",
        events.map((e, i) => (i === 11 ? { ...e, canonical: e.canonical.replace("p11", "p12") } : e)),
        "altered_events",
      ],
      ["deleted", [...events.slice(0, 20), ...events.slice(21)], "altered_events"],
      ["reordered", [...events.slice(0, 5), events[6]!, events[5]!, ...events.slice(7)], "altered_events"],
      [
        "hash changed",
        events.map((e, i) =>
          i === 33 ? { ...e, hash: e.hash.replace(/^./, (c) => (c === "0" ? "1" : "0")) } : e,
        ),
        null,
      ],
    ];
    for (const [what, tampered, headProblem] of cases) {
      const check = verifyLog(tampered, served);
      const expected = firstBad(tampered);
      expect(expected, what).not.toBeNull();
      expect(check.chain, what).toMatchObject({ ok: false, seq: expected });
      if (headProblem === null) expect(check.head, what).toMatchObject({ ok: true });
      else expect(check.head, what).toMatchObject({ ok: false, problem: headProblem });
    }
  });

  it("accepts a hash only in its one text form, lowercase hex", () => {
    // verifyChain (the store's check) lowercases; the offline check does not, like the export it reads.
    const events = log(5);
    const upper = events.map((e, i) => (i === 2 ? { ...e, hash: e.hash.toUpperCase() } : e));
    expect(verifyLog(upper, null).chain).toMatchObject({ ok: false, seq: 3 });
  });

  it("tells a truncated log and a bad signature apart from a broken chain", () => {
    const events = log(20);
    const served = headOver(events, 20);
    const truncated = verifyLog(events.slice(0, 15), served);
    expect(truncated.chain).toMatchObject({ ok: true });
    expect(truncated.head).toMatchObject({ ok: false, problem: "truncated_log" });
    const forged = verifyLog(events, { ...served, size: 19 });
    expect(forged.chain).toMatchObject({ ok: true });
    expect(forged.head).toMatchObject({ ok: false, problem: "bad_signature" });
  });
});
