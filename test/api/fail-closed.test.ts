/**
 * Fail-closed audit: when the store cannot make an audit event durable (here a
 * real SQLite lock held by another connection, as a second process or a stuck
 * backup would), key operations answer 503 `audit_unavailable` and return no
 * key material; nothing is half-written, and the node resumes by itself once
 * writing works again, with an unbroken audit chain.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CustosNode, openNode } from "../../src/api/server.js";
import { verifyChain } from "../../src/audit/chain.js";
import { b64u } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";

describe("fail-closed audit", () => {
  let dir: string;
  let node: CustosNode;
  let root: string;

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
    dir = mkdtempSync(join(tmpdir(), "custos-failclosed-"));
    node = await openNode({ dataDir: dir, log: pino({ level: "silent" }), storeBusyTimeoutMs: 100 });
    const custodians = ["a1", "b2"].map((id) => ({
      id,
      publicKey: b64u.encode(generateX25519KeyPair().publicKey),
    }));
    const init = await node.app.request("/v1/sys/init", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ threshold: 2, custodians }),
    });
    root = ((await init.json()) as { rootToken: string }).rootToken;
    expect((await call("POST", "/v1/keys", { name: "k" })).status).toBe(201);
  });

  afterAll(async () => {
    await node?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
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
