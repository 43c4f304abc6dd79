/**
 * Two witnesses, two keys, one node, all real processes. Both witnesses
 * countersign the node's heads and the node serves both countersignatures;
 * `custos audit verify` with both witnesses passes. Then the node rewrites
 * history after both signed — stopped, an earlier copy of its data directory
 * put back, restarted, other events appended under the same audit key — and
 * each witness raises the alarm on its status endpoint, and `custos audit
 * verify --witness URL1 --witness URL2` names the first forked size for each
 * of them. (witness-fork.test.ts checks one witness's evidence in detail.)
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { TreeHeadJson } from "../../src/audit/tree-head.js";
import { readWitnessPublicKeyFile } from "../../src/audit/witness-key.js";
import { b64u } from "../../src/crypto/bytes.js";
import { freePort, runCli, type ServerProcess, startCustos, startServer } from "./harness.js";

const TOKEN = "cst_witnesses-e2e-root-token";
const NAMES = ["weill", "msk"] as const;

interface Status {
  alarm: boolean;
  logs: { log: string; size: number | null; alarm: { kind: string } | null }[];
}

describe("two witnesses countersign a node, and both catch it rewriting history", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-witnesses-e2e-"));
  const data = join(dir, "node");
  const copy = join(dir, "node-copy");
  let node: ServerProcess | undefined;
  const witnesses: ServerProcess[] = [];
  let nodeAddr: string;
  let urls: string[];
  let env: Record<string, string>;

  const startNode = async () => {
    node = await startServer([
      ...["--dev", "--dev-root-token", TOKEN, "--data-dir", data, "--listen", nodeAddr],
      ...NAMES.flatMap((n, i) => ["--witness", urls[i]!, "--witness-key", join(dir, `${n}.pub`)]),
      ...["--witness-interval", "0.3"],
    ]);
  };
  const status = async (url: string) => (await (await fetch(`${url}/v1/witness/status`)).json()) as Status;
  const sizes = async () => Promise.all(urls.map(async (u) => (await status(u)).logs[0]?.size ?? 0));
  const createKeys = async (prefix: string, n: number) => {
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${node!.url}/v1/keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ name: `${prefix}-${i}` }),
      });
      expect(res.status).toBe(201);
    }
  };
  const verifyArgs = () => [
    ...["audit", "verify"],
    ...urls.flatMap((u) => ["--witness", u]),
    ...NAMES.flatMap((n) => ["--witness-key", join(dir, `${n}.pub`)]),
  ];

  beforeAll(async () => {
    for (const n of NAMES) expect((await runCli(["witness", "keygen", "--out", join(dir, n)])).code).toBe(0);
    nodeAddr = `127.0.0.1:${await freePort()}`;
    urls = [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`];
    await startNode();
    env = { CUSTOS_ADDR: node!.url, CUSTOS_TOKEN: TOKEN };
    writeFileSync(join(dir, "token"), TOKEN, { mode: 0o600 });
    for (const [i, n] of NAMES.entries()) {
      witnesses.push(
        await startCustos([
          ...["witness", "--listen", urls[i]!.replace("http://", ""), "--log", node!.url],
          ...["--token-file", join(dir, "token"), "--key", join(dir, `${n}.key`)],
          ...["--data-dir", join(dir, `${n}-data`), "--interval", "0.2", "--log-level", "warn"],
        ]),
      );
    }
    await createKeys("before", 3);
  }, 60_000);

  afterAll(async () => {
    for (const w of witnesses) await w.stop();
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("both witnesses countersign; the head carries both; verify with both passes", async () => {
    const keys = NAMES.map((n) => b64u.encode(readWitnessPublicKeyFile(join(dir, `${n}.pub`)).publicKey));
    const served = await vi.waitFor(
      async () => {
        const res = await fetch(`${node!.url}/v1/audit/head`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        const h = (await res.json()) as { cosignatures: { witness: string; witnessKey: string }[] };
        expect(h.cosignatures).toHaveLength(2);
        return h;
      },
      { timeout: 20_000, interval: 200 },
    );
    expect(served.cosignatures.map((c) => c.witnessKey).sort()).toEqual([...keys].sort());
    expect(served.cosignatures.map((c) => c.witness).sort()).toEqual([...NAMES].sort());
    const r = await runCli([...verifyArgs(), "--format", "json"], env);
    expect(r.code, r.stderr).toBe(0);
    const verdict = JSON.parse(r.stdout) as {
      witnesses: {
        ok: boolean;
        cosignatures: { checked: number };
        witnesses: { witness: string; problems: unknown[] }[];
      };
    };
    expect(verdict.witnesses.ok).toBe(true);
    expect(verdict.witnesses.cosignatures.checked).toBe(2);
    expect(verdict.witnesses.witnesses.map((w) => [w.witness, w.problems])).toEqual(
      NAMES.map((n) => [n, []]),
    );
    // Offline, the export's head carries both countersignatures; they check against the export's events.
    const out = join(dir, "export.jsonl");
    expect((await runCli(["audit", "export", "--out", out], env)).code).toBe(0);
    const offline = await runCli(
      ["audit", "verify", "--export", out, ...NAMES.flatMap((n) => ["--witness-key", join(dir, `${n}.pub`)])],
      env,
    );
    expect(offline.code, offline.stderr).toBe(0);
    expect(offline.stdout).toContain(
      "Countersignatures served with the head: 2 verified against the events.",
    );
  });

  it("a node that rewrites history after both signed is caught by each witness and by verify", async () => {
    // 1. The backup, taken while both witnesses have signed some history.
    await node!.stop();
    cpSync(data, copy, { recursive: true });
    const db = new Database(join(copy, "custos.db"), { readonly: true });
    const copySize = (db.prepare("SELECT max(seq) AS n FROM audit_events").get() as { n: number }).n;
    db.close();
    // 2. The node runs on and both witnesses countersign the longer log.
    await startNode();
    // Well past what a restart writes by itself (unseal, counted refusals of the witnesses' polls while
    // sealed): the restored node's first new heads must be smaller than what the witnesses signed.
    await createKeys("after", 20);
    await vi.waitFor(async () => expect(Math.min(...(await sizes()))).toBeGreaterThan(copySize + 20), {
      timeout: 20_000,
      interval: 100,
    });
    await node!.stop();
    const signedBefore = Math.max(...(await sizes()));
    // 3. The rollback: the old copy back, another history on top of it.
    rmSync(data, { recursive: true, force: true });
    cpSync(copy, data, { recursive: true });
    await startNode();
    // The restored node's first heads are smaller than what the witnesses signed, yet signed later:
    // two conflicting signed heads (FORMATS §8.3). Only then does the forged history outgrow them.
    for (const url of urls) {
      // Up to the witness's proof backoff (64 × its 0.2 s interval) after the restored node signs anew,
      // on top of a restart that takes seconds on a loaded machine.
      await vi.waitFor(async () => expect((await status(url)).alarm).toBe(true), {
        timeout: 60_000,
        interval: 100,
      });
      expect(["fork", "rollback"]).toContain((await status(url)).logs[0]!.alarm!.kind);
    }
    await createKeys("forged", signedBefore - copySize + 5);
    // Each witness's first forked size: the smallest size it countersigned beyond the backup.
    const firstForked = await Promise.all(
      urls.map(async (url) => {
        const log = (await status(url)).logs[0]!.log;
        const { heads } = (await (await fetch(`${url}/v1/witness/heads?log=${log}`)).json()) as {
          heads: { head: TreeHeadJson }[];
        };
        return Math.min(...heads.map((h) => h.head.size).filter((n) => n > copySize));
      }),
    );
    const r = await runCli(verifyArgs(), env);
    expect(r.code).toBe(1);
    for (const [i, n] of NAMES.entries()) {
      expect(r.stdout).toMatch(
        new RegExp(
          `Witness ${n} \\(${urls[i]}\\) DISAGREES: forked head at size ${firstForked[i]}: node root [0-9a-f]{64}, witness ${n} signed root [0-9a-f]{64}`,
        ),
      );
    }
    expect(r.stderr).toMatch(`forked head at size ${Math.min(...firstForked)}`);
  }, 180_000);
});
