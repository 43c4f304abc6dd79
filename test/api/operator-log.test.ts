/**
 * The operator log says why a request was refused — the reason the caller's
 * opaque error hides — without context values or key material.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { type CustosNode, openNode } from "../../src/api/server.js";
import { b64u } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";

describe("operator log", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-oplog-"));
  const lines: string[] = [];
  let node: CustosNode | undefined;

  afterAll(async () => {
    await node?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("records why a decryption was refused, and no context value", async () => {
    node = await openNode({
      dataDir: dir,
      log: pino({ level: "warn" }, { write: (line: string) => lines.push(line) }),
    });
    const custodians = ["a1", "b2"].map((id) => ({
      id,
      publicKey: b64u.encode(generateX25519KeyPair().publicKey),
    }));
    const { rootToken } = await node.seal.init(2, custodians);
    const call = async (path: string, body: unknown) =>
      node!.app.request(path, {
        method: "POST",
        headers: { authorization: `Bearer ${rootToken}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    await call("/v1/keys", { name: "k" });
    const dk = (await (
      await call("/v1/keys/k/datakey", { purpose: "TREAT", context: { patient: "MRN-SECRET-1" } })
    ).json()) as {
      ciphertext: string;
    };
    const res = await call("/v1/keys/k/decrypt", {
      purpose: "TREAT",
      context: { patient: "MRN-SECRET-2" },
      ciphertext: dk.ciphertext,
    });
    expect(res.status).toBe(400);
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(entries).toContainEqual(
      expect.objectContaining({
        operation: "keys.decrypt",
        reason: "authentication_failed",
        key: "k",
        msg: "keys.decrypt refused",
      }),
    );
    expect(lines.join("\n")).not.toContain("MRN-SECRET");
  });
});
