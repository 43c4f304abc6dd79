/**
 * The auditor's witness checks (src/audit/witness-check.ts): roots at chosen
 * sizes agree with RFC 9162's MTH; a countersignature passes only when it is
 * by a pinned witness, for this log, verifies, and signs the root the events
 * give at its size; a witness view with a forked head names the first forked
 * size and both roots; a witness that saw more events than the node has is a
 * rollback; a witness's own alarm is reported.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { cosign, cosignatureToJson } from "../../src/audit/cosignature.js";
import { leafHash, treeHead } from "../../src/audit/merkle.js";
import { auditPublicKey, signTreeHead, treeHeadToJson } from "../../src/audit/tree-head.js";
import { checkCosignature, checkWitnessView, rootsAtSizes } from "../../src/audit/witness-check.js";
import { generateWitnessKey } from "../../src/audit/witness-key.js";
import { hex, utf8 } from "../../src/crypto/bytes.js";
import { Secret } from "../../src/crypto/secret.js";

const events = (tag: string, n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => ({ canonical: `{"seq":${from + i + 1},"tag":"${tag}"}` }));
const nodeKey = Secret.of(ed25519.utils.randomSecretKey());
const logKey = auditPublicKey(nodeKey);
const w = generateWitnessKey("weill-mirror");
const other = generateWitnessKey("rogue");

const rootOf = (evs: { canonical: string }[], size: number) =>
  treeHead(
    evs.map((e) => leafHash(utf8(e.canonical))),
    size,
  );

/** A witness's entry for the head of `size` over `evs`, as it serves it. */
function entry(evs: { canonical: string }[], size: number, key = w) {
  const root = rootOf(evs, size);
  const head = signTreeHead(nodeKey, size, 1000 + size, root);
  const c = cosign(key.secretKey, key.witness, {
    log: logKey,
    size,
    root,
    timestamp: head.timestamp,
    cosignedAt: 5,
  });
  return { head: treeHeadToJson(head, logKey), cosignature: cosignatureToJson(c) };
}

describe("witness checks", () => {
  const log = events("a", 12);
  const sizes = [1, 5, 8, 12];
  const roots = rootsAtSizes(log, [...sizes, 0, 13]);

  it("computes the roots at the requested sizes in one pass, ignoring sizes outside the log", () => {
    expect([...roots.keys()].sort((a, b) => a - b)).toEqual(sizes);
    for (const n of sizes) expect(hex.encode(roots.get(n)!)).toBe(hex.encode(rootOf(log, n)));
  });

  it("accepts a good countersignature and names each problem with one", () => {
    const good = entry(log, 8).cosignature;
    expect(checkCosignature(good, { logKey, roots, eventCount: 12, pins: [w] })).toBeNull();
    expect(checkCosignature(good, { logKey, roots, eventCount: 12 })).toBeNull();
    expect(checkCosignature(good, { logKey, roots, eventCount: 12, pins: [other] })!.problem).toMatch(
      /not among the pinned/,
    );
    expect(
      checkCosignature(
        { ...good, signature: entry(log, 5).cosignature.signature },
        { logKey, roots, eventCount: 12 },
      ),
    ).toMatchObject({
      size: 8,
      problem: expect.stringMatching(/^bad countersignature by weill-mirror/),
    });
    expect(
      checkCosignature(good, {
        logKey: auditPublicKey(Secret.of(ed25519.utils.randomSecretKey())),
        roots,
        eventCount: 12,
      })!.problem,
    ).toMatch(/another log/);
    expect(checkCosignature({ ...good, size: "x" }, { logKey, roots, eventCount: 12 })!.problem).toMatch(
      /malformed/,
    );
  });

  it("names the first forked size with the node's root and the witness's", () => {
    const forked = [...log.slice(0, 6), ...events("b", 6, 6)];
    const view = {
      url: "http://w",
      name: "weill-mirror",
      heads: [entry(forked, 5), entry(forked, 8), entry(forked, 12)],
      alarm: null,
    };
    const check = checkWitnessView(view, { logKey, roots, eventCount: 12, pins: [w] });
    expect(check.problems.map((p) => p.size)).toEqual([8, 12]);
    expect(check.problems[0]!.problem).toBe(
      `forked head at size 8: node root ${hex.encode(rootOf(log, 8))}, witness weill-mirror signed root ${hex.encode(rootOf(forked, 8))}`,
    );
    expect(check.latest?.size).toBe(5);
  });

  it("reports a witness that saw more events than the node has (rollback) and the witness's own alarm", () => {
    const longer = events("a", 20);
    const view = {
      url: "http://w",
      name: "weill-mirror",
      heads: [entry(longer, 12), entry(longer, 20)],
      alarm: { kind: "rollback", detail: "smaller head" },
    };
    const check = checkWitnessView(view, { logKey, roots, eventCount: 12 });
    expect(check.problems.map((p) => p.problem)).toEqual([
      expect.stringMatching(
        /^rollback: witness weill-mirror .* countersigned size 20 but the node's log has only 12 events/,
      ),
      expect.stringMatching(/raised an alarm about this log \(rollback\)/),
    ]);
    expect(check.latest?.size).toBe(12);
  });

  it("refuses a witness's copy of a head that the node did not sign", () => {
    const e = entry(log, 5);
    const view = {
      url: "http://w",
      name: "weill-mirror",
      heads: [{ ...e, head: { ...e.head, signature: entry(log, 8).head.signature } }],
      alarm: null,
    };
    expect(checkWitnessView(view, { logKey, roots, eventCount: 12 }).problems[0]!.problem).toMatch(
      /without the node's valid signature/,
    );
  });
});
