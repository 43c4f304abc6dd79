import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CustosNode } from "../../src/api/server.js";
import { verifyChain } from "../../src/audit/chain.js";
import { initialisedNode } from "../helpers/node.js";

describe("fail-closed audit", () => {
  let dir: string;
  let node: CustosNode;
  let root: string;
  let close: (() => Promise<void>) | undefined;

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await node.app.request(path, {
      method,
      headers: { authorization: `Bearer ${root}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown> & { error?: { code: string } },
    };
  };

  beforeAll(async () => {
    const t = await initialisedNode({ storeBusyTimeoutMs: 100 });
    ({ node, dir, rootToken: root } = t);
    close = t.close;
    expect((await call("POST", "/v1/keys", { name: "k" })).status).toBe(201);
  });

  afterAll(async () => {
    await close?.();
  });

  it("refuses key operations with 503 while the audit cannot be written, then resumes", async () => {
    const before = await node.store.readAudit({ fromSeq: 1, limit: 1000 });
    const blocker = new Database(join(dir, "custos.db"));
    blocker.exec("BEGIN EXCLUSIVE");
    try {
      const use = { purpose: "TREAT", context: { patient: "p" } };
      const results = await Promise.all([
        call("POST", "/v1/keys/k/datakey", use),
        call("POST", "/v1/keys/k/encrypt", { ...use, plaintext: "aGVsbG8=" }),
        call("POST", "/v1/keys/k/rotate", {}),
        call("POST", "/v1/keys", { name: "k2" }),
      ]);
      for (const r of results) {
        expect(r.status).toBe(503);
        expect(r.body.error?.code).toBe("audit_unavailable");
        expect(r.body).not.toHaveProperty("plaintext");
        expect(r.body).not.toHaveProperty("ciphertext");
      }
    } finally {
      blocker.exec("ROLLBACK");
      blocker.close();
    }
    // Nothing half-written: no new version, no new key, no events.
    expect((await node.store.getKey("k"))?.latestVersion).toBe(1);
    expect(await node.store.getKey("k2")).toBeNull();
    expect(await node.store.readAudit({ fromSeq: 1, limit: 1000 })).toHaveLength(before.length);

    const again = await call("POST", "/v1/keys/k/datakey", { purpose: "TREAT", context: {} });
    expect(again.status).toBe(200);
    const after = await node.store.readAudit({ fromSeq: 1, limit: 1000 });
    expect(after).toHaveLength(before.length + 1);
    expect(verifyChain(after).ok).toBe(true);
  });
});
