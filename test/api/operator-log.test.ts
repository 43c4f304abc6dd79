import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { initialisedNode } from "../helpers/node.js";

describe("operator log", () => {
  const lines: string[] = [];
  let close: (() => Promise<void>) | undefined;

  afterAll(async () => {
    await close?.();
  });

  it("records why a decryption was refused, and no context value", async () => {
    const t = await initialisedNode({
      log: pino({ level: "warn" }, { write: (line: string) => lines.push(line) }),
    });
    close = t.close;
    const { node, rootToken } = t;
    const call = async (path: string, body: unknown) =>
      node.app.request(path, {
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
