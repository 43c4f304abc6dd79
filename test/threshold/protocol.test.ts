import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ThresholdCoordinator } from "../../src/threshold/coordinator.js";
import { parseThresholdHeader, thresholdOpen, thresholdWrap } from "../../src/threshold/ecies.js";
import { ThresholdUnavailableError } from "../../src/threshold/unwrap.js";
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

describe("share-node routes refuse what they should", () => {
  const post = (url: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });

  it("401 for an unsigned or foreign request, 400 for a bad body, never 500", async () => {
    const url = nodes[0]!.url;
    const unsigned = await post(url, "/v1/threshold/partial", {});
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { error: string }).error).toBe("unauthenticated_missing");
    const info = (await (await fetch(`${url}/v1/threshold/info`)).json()) as { identityKey: string };
    const { signRequest } = await import("../../src/threshold/request-auth.js");
    const { b64u, utf8 } = await import("../../src/crypto/bytes.js");
    const sign = (who: typeof signer, body: unknown) =>
      signRequest(
        who,
        "POST",
        "/v1/threshold/partial",
        b64u.decode(info.identityKey, "k"),
        utf8(JSON.stringify(body)),
      );
    const stranger = testSigner();
    const foreign = await post(url, "/v1/threshold/partial", {}, sign(stranger, {}));
    expect(foreign.status).toBe(401);
    const format = "custos-partial-request/v2";
    const bad = { format, shareId: "zz", epoch: 0, point: "x", key: "k", version: 1 };
    const invalid = await post(url, "/v1/threshold/partial", bad, sign(signer, bad));
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { error: string }).error).toBe("invalid_request");
    // Version 1 (no format: the ciphertext's own, unblinded point) is refused by name.
    const v1 = { shareId: "00".repeat(16), epoch: 1, point: "A".repeat(43), key: "k", version: 1 };
    const old = await post(url, "/v1/threshold/partial", v1, sign(signer, v1));
    expect(old.status).toBe(400);
    const oldAnswer = (await old.json()) as { error: string; message: string };
    expect(oldAnswer.error).toBe("unsupported_format");
    expect(oldAnswer.message).toMatch(/custos-partial-request\/v2.*version 1 \(an unblinded point\)/);
    const identity = { ...v1, format };
    const idPoint = await post(url, "/v1/threshold/partial", identity, sign(signer, identity));
    expect(idPoint.status).toBe(400);
    expect(((await idPoint.json()) as { message: string }).message).toMatch(/identity/);
  });

  it("a tampered dealing is refused by its recipients, naming the dealer, and nothing is stored", async () => {
    const { callShareNode } = await import("../../src/threshold/share-node-client.js");
    const { Dealing, CompleteResponse } = await import("../../src/threshold/wire.js");
    const three = nodes.slice(0, 3);
    const infos = await Promise.all(
      three.map(
        async (n) =>
          (await (await fetch(`${n.url}/v1/threshold/info`)).json()) as {
            identityKey: string;
            hpkeKey: string;
          },
      ),
    );
    const round = {
      shareId: "ab".repeat(16),
      key: "tamper",
      version: 1,
      set: "default",
      epoch: 1,
      threshold: 2,
      participants: three.map((n, i) => ({
        index: i + 1,
        node: n.name,
        identityKey: infos[i]!.identityKey,
        hpkeKey: infos[i]!.hpkeKey,
      })),
      kind: "dkg" as const,
    };
    const refs = three.map((n, i) => ({ node: n.name, url: n.url, identityKey: infos[i]!.identityKey }));
    const dealings = await Promise.all(
      refs.map((r, i) => callShareNode(signer, r, "/v1/threshold/dkg/deal", { round, self: i + 1 }, Dealing)),
    );
    // The coordinator swaps dealer 2's first commitment for dealer 1's.
    dealings[1] = {
      ...dealings[1]!,
      commitments: [dealings[0]!.commitments[0]!, ...dealings[1]!.commitments.slice(1)],
    };
    await expect(
      callShareNode(
        signer,
        refs[0]!,
        "/v1/threshold/dkg/complete",
        { round, self: 1, dealings },
        CompleteResponse,
      ),
    ).rejects.toThrow(new RegExp(`${three[1]!.name} \\(index 2\\): signature does not verify`));
    const { existsSync } = await import("node:fs");
    const { join } = await import("node:path");
    expect(existsSync(join(three[0]!.dataDir, "threshold", `${round.shareId}.json`))).toBe(false);
  });
});
