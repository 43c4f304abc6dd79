import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ThresholdCoordinator, ThresholdUnavailableError } from "../../src/threshold/coordinator.js";
import { parseThresholdHeader, thresholdOpen, thresholdWrap } from "../../src/threshold/ecies.js";
import { type InProcessNode, startInProcessNode, testSigner } from "./helpers.js";

const signer = testSigner();
let nodes: InProcessNode[] = [];
let coordinator: ThresholdCoordinator;

beforeAll(async () => {
  nodes = await Promise.all(
    ["s1", "s2", "s3", "s4", "s5"].map((n) => startInProcessNode(n, [signer.publicKey])),
  );
  coordinator = new ThresholdCoordinator({ signer, nodes: new Map(nodes.map((n) => [n.name, n.url])) });
});
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()));
});

describe("threshold protocol, in process", () => {
  it("generates 3-of-5, wraps, unwraps, refreshes", async () => {
    const key = await coordinator.generate("ehr", 1, [
      { name: "main", threshold: 3, nodes: nodes.map((n) => n.name) },
    ]);
    await coordinator.commit(key);
    const blob = thresholdWrap(key.publicKey, "ehr", 1, new Uint8Array([1, 2, 3]), { patient: "p1" });
    const header = parseThresholdHeader(blob);
    const s = await coordinator.sharedPoint(key, header.ephemeral);
    expect([...thresholdOpen(blob, { patient: "p1" }, key.publicKey, s)]).toEqual([1, 2, 3]);
    const refreshed = await coordinator.refresh(key);
    expect(refreshed.descriptor.publicKey).toBe(key.descriptor.publicKey);
    await coordinator.commit(refreshed);
    const s2 = await coordinator.sharedPoint(refreshed, header.ephemeral);
    expect(s2.equals(s)).toBe(true);
    await expect(coordinator.sharedPoint(key, header.ephemeral)).rejects.toBeInstanceOf(
      ThresholdUnavailableError,
    );
  });
});
