/**
 * Finding 18 of issue 10 (witness part), performed as the attack would be:
 * something between a witness and a real node — here a test HTTP proxy in
 * front of the real `custos server` — spoils the node's consistency proofs
 * once each way (a wrong hash, then a non-hex entry). Before the fix the real
 * `custos witness` process took the first spoiled proof for a rewritten log,
 * raised an alarm and never countersigned that log again: one bad answer
 * silenced a witness for good. Now a proof that is malformed or does not
 * verify is an error the witness logs and retries with backoff; it keeps
 * countersigning, and no alarm or evidence appears (alarms need two
 * conflicting signed heads, test/e2e/witness-fork.test.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { freePort, runCli, type ServerProcess, startCustos, startServer } from "./harness.js";

const TOKEN = "cst_witness-proof-attack-root-token";

interface Status {
  alarm: boolean;
  logs: { log: string | null; size: number | null; lastError: string | null; alarm: unknown }[];
}

/** A pass-through proxy that spoils the first two consistency proofs it relays. */
function spoilingProxy(
  target: string,
): Promise<{ url: string; spoiled: string[][]; close(): Promise<void> }> {
  const spoiled: string[][] = [];
  const spoil = (proof: string[]): string[] => {
    if (spoiled.length === 0 && proof.length > 0) {
      const first = proof[0]!;
      const flipped = `${first.slice(0, -1)}${first.endsWith("0") ? "1" : "0"}`;
      return [flipped, ...proof.slice(1)];
    }
    return ["not-a-hash", ...proof.slice(1)];
  };
  const server: Server = createServer(async (req, res) => {
    try {
      const upstream = await fetch(`${target}${req.url}`, {
        method: req.method,
        headers: { authorization: req.headers.authorization ?? "" },
      });
      let body = await upstream.text();
      if (req.url?.startsWith("/v1/audit/proof/consistency") && upstream.ok && spoiled.length < 2) {
        const json = JSON.parse(body) as { proof: string[] };
        const original = json.proof;
        json.proof = spoil(original);
        spoiled.push(json.proof);
        body = JSON.stringify(json);
      }
      res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "" });
      res.end(body);
    } catch (err) {
      res.writeHead(502).end(String(err));
    }
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        spoiled,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}

describe("finding 18: a malformed proof does not stop the witness", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-attack-witness-"));
  let node: ServerProcess;
  let witness: ServerProcess;
  let proxy: Awaited<ReturnType<typeof spoilingProxy>>;
  let witnessUrl: string;

  const status = async () => (await (await fetch(`${witnessUrl}/v1/witness/status`)).json()) as Status;
  const createKeys = async (prefix: string, n: number) => {
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${node.url}/v1/keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ name: `${prefix}-${i}` }),
      });
      expect(res.status).toBe(201);
    }
  };

  beforeAll(async () => {
    expect((await runCli(["witness", "keygen", "--out", join(dir, "msk")])).code).toBe(0);
    node = await startServer(["--dev", "--dev-root-token", TOKEN, "--data-dir", join(dir, "node")]);
    proxy = await spoilingProxy(node.url);
    writeFileSync(join(dir, "token"), TOKEN, { mode: 0o600 });
    witnessUrl = `http://127.0.0.1:${await freePort()}`;
    witness = await startCustos([
      ...["witness", "--listen", witnessUrl.replace("http://", ""), "--log", proxy.url],
      ...["--token-file", join(dir, "token"), "--key", join(dir, "msk.key")],
      ...["--data-dir", join(dir, "witness-data"), "--interval", "0.2", "--log-level", "info"],
    ]);
  }, 120_000);

  afterAll(async () => {
    await witness?.stop();
    await proxy?.close();
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("finding 18: a malformed proof does not stop the witness — it retries, keeps countersigning, raises no alarm", async () => {
    // The witness countersigns a first head; the log then grows, and the proxy spoils the next two proofs.
    await vi.waitFor(async () => expect((await status()).logs[0]?.size ?? 0).toBeGreaterThan(0), {
      timeout: 30_000,
      interval: 100,
    });
    await createKeys("a", 3);
    await vi.waitFor(() => expect(proxy.spoiled).toHaveLength(2), { timeout: 30_000, interval: 100 });
    const sizeWhenSpoiled = (await status()).logs[0]!.size!;

    // It goes on countersigning the growing log through the same proxy.
    await createKeys("b", 3);
    await vi.waitFor(
      async () => expect((await status()).logs[0]!.size!).toBeGreaterThan(sizeWhenSpoiled + 3),
      { timeout: 30_000, interval: 100 },
    );
    const s = await status();
    expect(s.alarm).toBe(false);
    expect(s.logs[0]!.alarm).toBeNull();
    const { evidence } = (await (await fetch(`${witnessUrl}/v1/witness/evidence`)).json()) as {
      evidence: unknown[];
    };
    expect(evidence).toEqual([]);
    // Both spoiled proofs were logged as errors to retry, and nothing was logged as an alarm.
    const lines = witness
      .output()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: number; msg: string });
    const retried = lines.filter((l) => /could not verify the node's consistency proof/.test(l.msg));
    expect(retried.map((l) => l.level)).toEqual([40, 40]);
    expect(retried[0]!.msg).toMatch(/does not verify/);
    expect(retried[1]!.msg).toMatch(/malformed/);
    expect(lines.some((l) => /WITNESS ALARM/.test(l.msg))).toBe(false);
  }, 120_000);
});
