/**
 * Finding 18 of issue 10 (Merkle part): every inclusion or consistency proof
 * loaded every leaf hash of the log (O(n) memory per request: about 3 GB at
 * 10⁸ events), so any auditor token could make the node allocate without
 * bound by asking for proofs. Performed as such a caller would, through the
 * HTTP routes of a real node whose log holds a few thousand events: each
 * proof must verify against the signed head, must not call the whole-leaves
 * reader, and must be built from one read of O(log n) stored subtree hashes.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { verifyConsistency, verifyInclusion } from "../../src/audit/merkle.js";
import { hex } from "../../src/crypto/bytes.js";
import { initialisedNode, type TestNode } from "../helpers/node.js";

describe("finding 18: proofs read O(log n)", () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await initialisedNode();
    const ev = (i: number) => ({
      time: new Date().toISOString(),
      principal: "test",
      operation: "test.op",
      decision: "allow" as const,
      reason: `event ${i}`,
    });
    for (let b = 0; b < 6; b++) await t.node.store.appendAudit(Array.from({ length: 500 }, (_, i) => ev(i)));
  }, 120_000);
  afterAll(async () => t?.close());

  const get = async (path: string) => {
    const res = await t.node.app.request(path, { headers: { authorization: `Bearer ${t.rootToken}` } });
    expect(res.status, path).toBe(200);
    return (await res.json()) as { leafHash?: string; proof: string[] };
  };

  it("finding 18: proofs read O(log n) — no proof loads the leaves; each reads at most 2·log₂ n + 2 subtree hashes", async () => {
    const first = (await t.node.merkle.signPending())!;
    await t.node.store.appendAudit([
      { time: new Date().toISOString(), principal: "t", operation: "t", decision: "allow" },
    ]);
    const head = (await t.node.merkle.signPending())!;
    expect(head.size).toBeGreaterThan(3000);
    const bound = 2 * Math.ceil(Math.log2(head.size)) + 2;

    const wholeLeaves = vi.spyOn(t.node.store, "readLeafHashes");
    const subtrees = vi.spyOn(t.node.store, "readSubtreeHashes");
    const leaves = new Map<number, Uint8Array>();
    for (const index of [0, 1, 1023, 2048, 2999, head.size - 1]) {
      const p = await get(`/v1/audit/proof/inclusion?index=${index}&size=${head.size}`);
      const leaf = hex.decode(p.leafHash!, "leafHash");
      leaves.set(index, leaf);
      const proof = p.proof.map((x) => hex.decode(x, "proof"));
      expect(verifyInclusion(leaf, index, head.size, proof, head.root)).toBe(true);
    }
    for (const from of [1, 1024, first.size]) {
      const c = await get(`/v1/audit/proof/consistency?from=${from}&to=${head.size}`);
      expect(c.proof.length).toBeGreaterThan(0);
      if (from === first.size) {
        const proof = c.proof.map((x) => hex.decode(x, "proof"));
        expect(verifyConsistency(first.size, head.size, proof, first.root, head.root)).toBe(true);
      }
    }
    expect(wholeLeaves).not.toHaveBeenCalled();
    expect(subtrees.mock.calls.length).toBeGreaterThanOrEqual(9); // 9 proofs, and the signer's roots if its timer ticked
    for (const [refs] of subtrees.mock.calls) expect(refs.length).toBeLessThanOrEqual(bound);
    // The leaf hashes served are the stored events' own.
    wholeLeaves.mockRestore();
    const stored = await t.node.store.readLeafHashes(1, head.size);
    for (const [index, leaf] of leaves) expect(hex.encode(leaf)).toBe(hex.encode(stored[index]!));
  }, 120_000);
});
