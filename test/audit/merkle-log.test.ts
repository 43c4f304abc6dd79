/**
 * The running Merkle log: the compact range agrees with RFC 9162's MTH at
 * every size; signed heads cover exactly the committed events, verify under
 * the audit key and are consistent with each other; a head stored for a size
 * whose events were later altered is detected when the log is rebuilt; the
 * HTTP endpoints serve heads and proofs that the RFC verifiers accept.
 */

import { join } from "node:path";
import Database from "better-sqlite3";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openNode } from "../../src/api/server.js";
import { leafHash, treeHead, verifyConsistency, verifyInclusion } from "../../src/audit/merkle.js";
import { CompactRange, MerkleLog } from "../../src/audit/merkle-log.js";
import { treeHeadFromJson, verifyTreeHead } from "../../src/audit/tree-head.js";
import { hex } from "../../src/crypto/bytes.js";
import { initialisedNode, type TestNode } from "../helpers/node.js";

describe("CompactRange", () => {
  it("folds to the RFC 9162 tree head at every size up to 70", () => {
    const leaves = Array.from({ length: 70 }, (_, i) => leafHash(Uint8Array.of(i)));
    const range = new CompactRange();
    expect(hex.encode(range.root())).toBe(hex.encode(treeHead([])));
    for (let n = 1; n <= 70; n++) {
      range.append(leaves[n - 1]!);
      expect(hex.encode(range.root())).toBe(hex.encode(treeHead(leaves, n)));
    }
  });
});

describe("MerkleLog on a node", () => {
  let t: TestNode;
  beforeEach(async () => {
    t = await initialisedNode();
  });
  afterEach(async () => {
    await t.close();
  });

  const ev = (reason: string) => ({
    time: new Date().toISOString(),
    principal: "test",
    operation: "test.op",
    decision: "allow" as const,
    reason,
  });

  it("signs heads over the committed events that verify and are mutually consistent", async () => {
    const { node } = t;
    await node.merkle.signPending();
    const first = await node.store.getTreeHead();
    expect(first).not.toBeNull();
    const key = node.merkle.publicKey!;
    expect(verifyTreeHead(key, first!)).toBe(true);
    const leaves1 = await node.store.readLeafHashes(1, first!.size);
    expect(hex.encode(first!.root)).toBe(hex.encode(treeHead(leaves1)));

    await node.store.appendAudit([ev("a"), ev("b"), ev("c")]);
    const second = await node.merkle.signPending();
    expect(second?.size).toBe(first!.size + 3);
    expect(verifyTreeHead(key, second!)).toBe(true);
    expect(await node.merkle.signPending()).toBeNull(); // nothing new, no new head
    const proof = await node.merkle.consistencyProof(first!.size, second!.size);
    expect(verifyConsistency(first!.size, second!.size, proof, first!.root, second!.root)).toBe(true);
    // A head does not verify under another size, time or root.
    expect(verifyTreeHead(key, { ...second!, size: second!.size + 1 })).toBe(false);
    expect(verifyTreeHead(key, { ...second!, timestamp: second!.timestamp + 1 })).toBe(false);
    expect(verifyTreeHead(key, { ...second!, root: first!.root })).toBe(false);
  });

  it("detects, when rebuilding, events altered under an existing signed head", async () => {
    const { node, dir } = t;
    await node.store.appendAudit([ev("x"), ev("y")]);
    const head = await node.merkle.signPending();
    expect(head).not.toBeNull();
    // Someone with the file rewrites an event's leaf.
    const db = new Database(join(dir, "custos.db"));
    db.prepare("UPDATE audit_events SET leaf = ? WHERE seq = 2").run(Buffer.alloc(32, 7));
    db.close();
    const errors: unknown[] = [];
    const rebuilt = new MerkleLog(node.store, (e) => errors.push(e));
    await rebuilt.start(node.seal.root());
    await expect(rebuilt.signPending()).rejects.toThrow(/does not match the stored events/);
    // ...and keeps refusing: no head is ever signed on top of the altered events.
    await node.store.appendAudit([ev("z")]);
    await expect(rebuilt.signPending()).rejects.toThrow(/does not match the stored events/);
    expect(errors.length).toBeGreaterThan(0);
    rebuilt.stop();
  });
});

describe("audit HTTP endpoints", () => {
  let t: TestNode;
  beforeEach(async () => {
    t = await initialisedNode();
  });
  afterEach(async () => {
    await t.close();
  });

  const get = async (path: string) => {
    const res = await t.node.app.request(path, { headers: { authorization: `Bearer ${t.rootToken}` } });
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown> & { error?: { code: string } },
    };
  };

  it("serves a signed head, and inclusion and consistency proofs that verify against it", async () => {
    const { node } = t;
    for (let i = 0; i < 5; i++) await get("/v1/keys"); // audited reads grow the log
    const h1 = (await node.merkle.signPending())!;
    for (let i = 0; i < 7; i++) await get("/v1/keys");
    await node.merkle.signPending();
    const served = await get("/v1/audit/head");
    expect(served.status).toBe(200);
    const { head, publicKey } = treeHeadFromJson(served.body as never);
    expect(verifyTreeHead(publicKey, head)).toBe(true);

    const leaves = await node.store.readLeafHashes(1, head.size);
    for (const index of [0, 3, head.size - 1]) {
      const p = await get(`/v1/audit/proof/inclusion?index=${index}&size=${head.size}`);
      expect(p.status).toBe(200);
      const proof = (p.body.proof as string[]).map((x) => hex.decode(x, "proof"));
      expect(p.body.leafHash).toBe(hex.encode(leaves[index]!));
      expect(verifyInclusion(leaves[index]!, index, head.size, proof, head.root)).toBe(true);
    }
    const c = await get(`/v1/audit/proof/consistency?from=${h1.size}&to=${head.size}`);
    const cproof = (c.body.proof as string[]).map((x) => hex.decode(x, "proof"));
    expect(verifyConsistency(h1.size, head.size, cproof, h1.root, head.root)).toBe(true);
  });

  it("serves the largest signed head of at most N events (atMost), for witnesses", async () => {
    await t.node.merkle.signPending();
    const h1 = (await t.node.store.getTreeHead())!;
    await get("/v1/keys");
    await t.node.merkle.signPending();
    const h2 = (await t.node.store.getTreeHead())!;
    expect(h2.size).toBeGreaterThan(h1.size);
    const at = await get(`/v1/audit/head?atMost=${h2.size - 1}`);
    expect(at.status).toBe(200);
    expect(at.body.size).toBe(h1.size);
    expect((await get(`/v1/audit/head?atMost=${h2.size + 5}`)).body.size).toBe(h2.size);
    expect((await get(`/v1/audit/head?atMost=1&size=1`)).status).toBe(400);
  });

  it("refuses proofs beyond the log or with inverted bounds, with 4xx", async () => {
    const size = await t.node.store.auditSize();
    expect((await get(`/v1/audit/proof/inclusion?index=0&size=${size + 10}`)).status).toBe(404);
    expect((await get("/v1/audit/proof/inclusion?index=5&size=5")).status).toBe(400);
    expect((await get("/v1/audit/proof/consistency?from=4&to=2")).status).toBe(400);
    expect((await get("/v1/audit/proof/consistency?from=x&to=2")).status).toBe(400);
  });

  it("filters events by purpose, decision, principal and time", async () => {
    const res = await get("/v1/audit/events?decision=allow&operation=sys.init");
    expect((res.body.events as unknown[]).length).toBe(1);
    const none = await get("/v1/audit/events?purpose=TREAT");
    expect(none.body.events).toEqual([]);
    const future = await get("/v1/audit/events?since=2999-01-01T00:00:00Z");
    expect(future.body.events).toEqual([]);
    expect((await get("/v1/audit/events?purpose=SNOOP")).status).toBe(400);
  });
});

describe("a node restarted sealed", () => {
  it("answers the head with 503 until the signing key is loaded at unseal", async () => {
    const t = await initialisedNode();
    await t.node.merkle.signPending();
    await t.node.close();
    const again = await openNode({ dataDir: t.dir, log: pino({ level: "silent" }) });
    try {
      const res = await again.app.request("/v1/audit/head", {
        headers: { authorization: `Bearer ${t.rootToken}` },
      });
      expect(res.status).toBe(503);
    } finally {
      await again.close();
      await t.close().catch(() => undefined);
    }
  });
});
