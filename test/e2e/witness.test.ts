/**
 * Witnessing end to end, with real processes over real HTTP: a development
 * node configured with a witness's public key, and a `custos witness` process
 * polling it with an auditor token file. Events on the node get
 * countersigned; the node collects the countersignatures and serves them on
 * GET /v1/audit/head; `custos audit verify --witness URL --witness-key FILE`
 * succeeds — and fails when the pinned witness key is another one.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { cosignatureFromJson, verifyCosignature } from "../../src/audit/cosignature.js";
import { readWitnessPublicKeyFile } from "../../src/audit/witness-key.js";
import { b64u } from "../../src/crypto/bytes.js";
import { freePort, runCli, type ServerProcess, startCustos, startServer } from "./harness.js";

const TOKEN = "cst_witness-e2e-root-token";

interface ServedHead {
  size: number;
  rootHash: string;
  publicKey: string;
  cosignatures: { witness: string; size: number; witnessKey: string }[];
}

describe("custos witness, end to end", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-witness-e2e-"));
  let node: ServerProcess;
  let witness: ServerProcess;
  let env: Record<string, string>;

  const head = async (query = ""): Promise<ServedHead> => {
    const res = await fetch(`${node.url}/v1/audit/head${query}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(200);
    return (await res.json()) as ServedHead;
  };

  beforeAll(async () => {
    for (const name of ["weill", "rogue"]) {
      const r = await runCli(["witness", "keygen", "--out", join(dir, name)]);
      expect(r.code, r.stderr).toBe(0);
    }
    const witnessUrl = `http://127.0.0.1:${await freePort()}`;
    node = await startServer([
      ...["--dev", "--dev-root-token", TOKEN, "--data-dir", join(dir, "node")],
      ...["--witness", witnessUrl, "--witness-key", join(dir, "weill.pub"), "--witness-interval", "0.3"],
    ]);
    env = { CUSTOS_ADDR: node.url, CUSTOS_TOKEN: TOKEN };
    writeFileSync(join(dir, "token"), TOKEN, { mode: 0o600 });
    witness = await startCustos([
      ...["witness", "--listen", witnessUrl.replace("http://", ""), "--log", node.url],
      ...["--token-file", join(dir, "token"), "--key", join(dir, "weill.key")],
      ...["--data-dir", join(dir, "witness-data"), "--interval", "0.2", "--log-level", "warn"],
    ]);
    expect(witness.url).toBe(witnessUrl);
    for (let i = 0; i < 3; i++) expect((await runCli(["keys", "create", `notes-${i}`], env)).code).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await witness?.stop();
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("countersignatures appear on GET /v1/audit/head and verify under the witness's key", async () => {
    const weill = readWitnessPublicKeyFile(join(dir, "weill.pub"));
    const served = await vi.waitFor(
      async () => {
        const h = await head();
        expect(h.cosignatures.length).toBeGreaterThan(0);
        return h;
      },
      { timeout: 20_000, interval: 200 },
    );
    expect(served.cosignatures).toHaveLength(1);
    const c = cosignatureFromJson(served.cosignatures[0]);
    expect(c.witness).toBe("weill");
    expect(b64u.encode(c.witnessKey)).toBe(b64u.encode(weill.publicKey));
    expect(b64u.encode(c.log)).toBe(served.publicKey);
    expect(verifyCosignature(c)).toBe(true);
    expect(c.size).toBeLessThanOrEqual(served.size);
    // The head of exactly that size carries the same countersignature.
    const exact = await head(`?size=${c.size}`);
    expect(exact.size).toBe(c.size);
    expect(exact.cosignatures.map((x) => x.size)).toEqual([c.size]);
    const status = (await (await fetch(`${witness.url}/v1/witness/status`)).json()) as { alarm: boolean };
    expect(status.alarm).toBe(false);
  });

  it("custos audit verify --witness checks the node's log against what the witness countersigned", async () => {
    const r = await runCli(
      [
        "audit",
        "verify",
        "--witness",
        witness.url,
        "--witness-key",
        join(dir, "weill.pub"),
        "--format",
        "json",
      ],
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    const verdict = JSON.parse(r.stdout) as {
      ok: boolean;
      witnesses: {
        ok: boolean;
        cosignatures: { checked: number };
        witnesses: { witness: string; heads: number; newestSize: number; problems: unknown[] }[];
      };
    };
    expect(verdict.ok).toBe(true);
    expect(verdict.witnesses.ok).toBe(true);
    expect(verdict.witnesses.cosignatures.checked).toBe(1);
    expect(verdict.witnesses.witnesses).toHaveLength(1);
    expect(verdict.witnesses.witnesses[0]).toMatchObject({ witness: "weill", problems: [] });
    expect(verdict.witnesses.witnesses[0]!.heads).toBeGreaterThan(0);
    const text = await runCli(["audit", "verify", "--witness", witness.url], env);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/Witness weill \(http:\/\/127\.0\.0\.1:\d+\): \d+ countersigned heads agree/);
  });

  it("fails when the countersignatures are not by the pinned witness key", async () => {
    const r = await runCli(
      ["audit", "verify", "--witness", witness.url, "--witness-key", join(dir, "rogue.pub")],
      env,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not among the pinned --witness-key files/);
  });
});
