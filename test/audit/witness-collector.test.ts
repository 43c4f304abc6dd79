/**
 * The node's collection of countersignatures (src/audit/witness-collector.ts)
 * from a witness answering over real HTTP: a good countersignature is stored
 * and served on GET /v1/audit/head; one by a key the node was not configured
 * with, one that does not verify, one for another log and one on a head this
 * node never signed (a fork) are refused, and nothing is stored.
 */
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Cosignature, cosign, cosignatureToJson } from "../../src/audit/cosignature.js";
import { WitnessCollector } from "../../src/audit/witness-collector.js";
import { generateWitnessKey, type WitnessKey } from "../../src/audit/witness-key.js";
import { randomBytes } from "../../src/crypto/bytes.js";
import type { TreeHeadRecord } from "../../src/store/store.js";
import { initialisedNode, type TestNode } from "../helpers/node.js";

describe("WitnessCollector", () => {
  let t: TestNode;
  let answer: unknown;
  let server: ReturnType<typeof serve>;
  let url: string;
  let head: TreeHeadRecord;
  let logged: { level: number; msg: string }[];
  const configured = generateWitnessKey("nyu-mirror");
  const stranger = generateWitnessKey("stranger");

  beforeEach(async () => {
    t = await initialisedNode();
    await t.node.store.appendAudit([
      { time: new Date().toISOString(), principal: "t", operation: "test", decision: "allow" },
    ]);
    head = (await t.node.merkle.signPending()) ?? (await t.node.store.getTreeHead())!;
    server = await new Promise((resolve) => {
      const s = serve({ fetch: () => Response.json(answer), hostname: "127.0.0.1", port: 0 }, () =>
        resolve(s),
      );
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    logged = [];
  });
  afterEach(async () => {
    await new Promise((r) => server.close(r));
    await t.close();
  });

  const collector = () =>
    new WitnessCollector(
      t.node.store,
      { urls: [url], keys: [configured] },
      () => t.node.merkle.publicKey,
      pino({ level: "warn" }, { write: (l: string) => logged.push(JSON.parse(l)) }),
    );
  const countersign = (key: WitnessKey, change: Partial<Cosignature> = {}) => {
    const c = cosign(key.secretKey, key.witness, {
      log: t.node.merkle.publicKey!,
      size: head.size,
      root: head.root,
      timestamp: head.timestamp,
      cosignedAt: Date.now(),
    });
    answer = { head: {}, cosignature: cosignatureToJson({ ...c, ...change }) };
  };

  it("stores a good countersignature and GET /v1/audit/head serves it", async () => {
    countersign(configured);
    expect(await collector().collect()).toEqual([
      { url, status: "stored", witness: "nyu-mirror", size: head.size },
    ]);
    const res = await t.node.app.request(`/v1/audit/head?size=${head.size}`, {
      headers: { authorization: `Bearer ${t.rootToken}` },
    });
    const body = (await res.json()) as { cosignatures: { witness: string; size: number }[] };
    expect(body.cosignatures).toMatchObject([{ witness: "nyu-mirror", size: head.size }]);
  });

  const refusals: [string, () => void, RegExp, number][] = [
    ["an unconfigured key", () => countersign(stranger), /not a configured witness key/, 40],
    [
      "a bad signature",
      () => countersign(configured, { cosignedAt: 1 }),
      /bad countersignature by nyu-mirror/,
      50,
    ],
    ["another log", () => countersign(configured, { log: randomBytes(32) }), /another log/, 40],
  ];
  it.each(refusals)("refuses a countersignature by %s", async (_, make, why, level) => {
    make();
    const [result] = await collector().collect();
    expect(result).toMatchObject({ status: "refused", detail: expect.stringMatching(why) });
    expect(await t.node.store.getCosignatures()).toEqual([]);
    expect(logged.some((l) => l.level === level && why.test(l.msg))).toBe(true);
  });

  it("refuses, and logs as an error, a valid countersignature on a head this node never signed", async () => {
    const other = randomBytes(32);
    const c = cosign(configured.secretKey, configured.witness, {
      log: t.node.merkle.publicKey!,
      size: head.size,
      root: other,
      timestamp: head.timestamp,
      cosignedAt: Date.now(),
    });
    answer = { head: {}, cosignature: cosignatureToJson(c) };
    const [result] = await collector().collect();
    expect(result).toMatchObject({ status: "refused", detail: expect.stringMatching(/did not sign .*fork/) });
    expect(await t.node.store.getCosignatures()).toEqual([]);
    expect(logged.some((l) => l.level === 50)).toBe(true);
  });
});
