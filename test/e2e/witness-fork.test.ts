/**
 * The rollback attack, for real: a node is stopped and a copy of its data
 * directory is kept; it runs on and a witness countersigns its growing log;
 * then it is stopped again, the old copy is put back, and the node is started
 * on it and appends other events — so, under the same audit signing key, the
 * sizes the witness already countersigned now have other roots. The witness
 * must notice — the restored node's first head is smaller than the newest the
 * witness countersigned yet signed later (a rollback), or has one of its
 * sizes with another root (a fork): two conflicting signed heads —, keep both
 * as evidence, raise the alarm in its log (level error) and on its status
 * endpoint, and stop countersigning; and `custos audit verify --witness` must
 * fail, naming the first forked size. (A rewritten log that outgrew the
 * witness between two polls gives only unverifiable consistency proofs, which
 * are not evidence (issue 10, finding 18); the witness then asks the node for
 * its largest signed head of at most its own size and finds the restored
 * node's first head there — test/audit/witness.test.ts.)
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type TreeHeadJson, treeHeadFromJson, verifyTreeHead } from "../../src/audit/tree-head.js";
import type { Evidence } from "../../src/audit/witness-store.js";
import { freePort, runCli, type ServerProcess, startCustos, startServer } from "./harness.js";

const TOKEN = "cst_witness-fork-root-token";

interface LogStatus {
  log: string;
  size: number | null;
  alarm: { kind: string; detail: string } | null;
}

describe("a rolled-back node forks its log; the witness and the auditor catch it", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-fork-e2e-"));
  const data = join(dir, "node");
  const copy = join(dir, "node-copy");
  let node: ServerProcess | undefined;
  let witness: ServerProcess;
  let nodeAddr: string;
  let witnessUrl: string;
  let env: Record<string, string>;
  let copySize: number;
  let sizeBeforeRollback: number;

  const startNode = async () => {
    node = await startServer([
      ...["--dev", "--dev-root-token", TOKEN, "--data-dir", data, "--listen", nodeAddr],
      ...["--witness", witnessUrl, "--witness-key", join(dir, "msk.pub"), "--witness-interval", "0.3"],
    ]);
  };
  const status = async () =>
    (await (await fetch(`${witnessUrl}/v1/witness/status`)).json()) as { alarm: boolean; logs: LogStatus[] };
  /** Adds `n` events through the API (a key each), faster than one CLI process per event. */
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
  const auditSize = async () => {
    const res = await fetch(`${node!.url}/v1/audit/events?from=1&limit=1000`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    return ((await res.json()) as { events: unknown[] }).events.length;
  };

  beforeAll(async () => {
    expect((await runCli(["witness", "keygen", "--out", join(dir, "msk")])).code).toBe(0);
    nodeAddr = `127.0.0.1:${await freePort()}`;
    witnessUrl = `http://127.0.0.1:${await freePort()}`;
    await startNode();
    env = { CUSTOS_ADDR: node!.url, CUSTOS_TOKEN: TOKEN };
    writeFileSync(join(dir, "token"), TOKEN, { mode: 0o600 });
    witness = await startCustos([
      ...["witness", "--listen", witnessUrl.replace("http://", ""), "--log", node!.url],
      ...["--token-file", join(dir, "token"), "--key", join(dir, "msk.key")],
      ...["--data-dir", join(dir, "witness-data"), "--interval", "0.2", "--log-level", "info"],
    ]);

    // 1. History as it was when the backup was taken.
    await createKeys("before", 3);
    await vi.waitFor(async () => expect((await status()).logs[0]?.size ?? 0).toBeGreaterThan(3), {
      timeout: 20_000,
      interval: 100,
    });
    await node!.stop();
    cpSync(data, copy, { recursive: true });
    const db = new Database(join(copy, "custos.db"), { readonly: true });
    copySize = (db.prepare("SELECT max(seq) AS n FROM audit_events").get() as { n: number }).n;
    db.close();

    // 2. The node runs on; the witness countersigns the longer log.
    await startNode();
    await createKeys("after", 5);
    await vi.waitFor(async () => expect((await status()).logs[0]?.size ?? 0).toBeGreaterThan(copySize + 5), {
      timeout: 20_000,
      interval: 100,
    });
    await node!.stop();
    sizeBeforeRollback = (await status()).logs[0]!.size!;

    // 3. The rollback: the old copy is put back and the node writes another history.
    rmSync(data, { recursive: true, force: true });
    cpSync(copy, data, { recursive: true });
    await startNode();
    await vi.waitFor(async () => expect((await status()).alarm).toBe(true), {
      timeout: 30_000,
      interval: 100,
    });
    await createKeys("forged", sizeBeforeRollback - copySize + 5);
  }, 180_000);

  afterAll(async () => {
    await witness?.stop();
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the witness keeps both signed heads as evidence, alarms in its log and status, and stops countersigning", async () => {
    const s = await status();
    const log = s.logs[0]!;
    expect(log.alarm).not.toBeNull();
    expect(["fork", "rollback"]).toContain(log.alarm!.kind);
    const { evidence } = (await (await fetch(`${witnessUrl}/v1/witness/evidence?log=${log.log}`)).json()) as {
      evidence: Evidence[];
    };
    expect(evidence).toHaveLength(1);
    const e = evidence[0]!;
    // Both heads carry the node's own valid signature under the one audit key: they prove the fork by themselves.
    for (const served of [e.seen, e.conflicting] as TreeHeadJson[]) {
      expect(served.publicKey).toBe(log.log);
      const { head, publicKey } = treeHeadFromJson(served);
      expect(verifyTreeHead(publicKey, head)).toBe(true);
    }
    // A fork pairs two heads of one size; a rollback or a failed proof pairs the newest countersigned head with the new one.
    if (e.kind === "fork") expect(e.seen.size).toBe(e.conflicting.size);
    else expect(e.seen.size).toBe(sizeBeforeRollback);
    expect(e.seen.size).toBeGreaterThan(copySize);
    expect(e.seen.rootHash).not.toBe(e.conflicting.rootHash);
    const alarmLine = witness
      .output()
      .split("\n")
      .find((l) => l.includes("WITNESS ALARM"));
    expect(alarmLine).toBeDefined();
    expect(JSON.parse(alarmLine!)).toMatchObject({ level: 50, alarm: e.kind });
    // No countersignature after the alarm, however the node grows.
    const frozen = log.size;
    await createKeys("later", 2);
    await new Promise((r) => setTimeout(r, 800));
    expect((await status()).logs[0]!.size).toBe(frozen);
  });

  it("custos audit verify --witness fails, naming the first forked size", async () => {
    const { heads } = (await (
      await fetch(`${witnessUrl}/v1/witness/heads?log=${(await status()).logs[0]!.log}`)
    ).json()) as { heads: { head: TreeHeadJson }[] };
    const firstForked = Math.min(...heads.map((h) => h.head.size).filter((n) => n > copySize));
    expect(await auditSize()).toBeGreaterThanOrEqual(sizeBeforeRollback);
    const r = await runCli(
      ["audit", "verify", "--witness", witnessUrl, "--witness-key", join(dir, "msk.pub")],
      env,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `forked head at size ${firstForked}: node root [0-9a-f]{64}, witness msk signed root [0-9a-f]{64}`,
      ),
    );
    // The restored node refuses the witness's countersignature on a head it (now) never signed.
    expect(node!.output()).toMatch(/countersigned a head of size \d+ that this node did not sign/);
    // The node's own chain and head are intact: only the witness shows the rewrite.
    const json = JSON.parse(
      (await runCli(["audit", "verify", "--witness", witnessUrl, "--format", "json"], env)).stdout,
    );
    expect(json.ok).toBe(true);
    expect(json.signedHead.ok).toBe(true);
    expect(json.witnesses.first.size).toBe(firstForked);
  });
});
