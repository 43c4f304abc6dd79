/**
 * Tampering with a real store file. A development node makes events and
 * signed heads; it is stopped (its WAL checkpointed into custos.db on close),
 * and the SQLite file is edited directly, as an insider with disk access
 * would: one byte of an event's canonical JSON, an event deleted, two events
 * swapped, the log truncated below a signed head, the newest head re-signed
 * with another key. The node is started again on the edited file and the
 * real `custos audit verify --audit-key KEY` must refuse the log, naming the
 * first bad index and the kind of damage. The node itself does not refuse to
 * start (it checks its newest head in the background and cannot sign again):
 * where that check trips, its log must say why. The pristine file is put
 * back before each case.
 *
 * The last kind, a fork of a head a witness has seen, needs a witness: see
 * witness-fork.test.ts (one witness) and witnesses.test.ts (two).
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { auditPublicKey, signTreeHead } from "../../src/audit/tree-head.js";
import { Secret } from "../../src/crypto/secret.js";
import { runCli, type ServerProcess, startServer } from "./harness.js";

const TOKEN = "cst_audit-tamper-root-token";

interface Verdict {
  ok: boolean;
  events: number;
  firstBadSeq?: number;
  kind?: string;
  problem?: string;
  signedHead: { ok: boolean; problem?: string; detail?: string; size?: number } | null;
}

describe("tampering with the node's SQLite file is caught by custos audit verify", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-tamper-e2e-"));
  const data = join(dir, "node");
  const dbFile = join(data, "custos.db");
  const pristine = join(dir, "pristine.db");
  let node: ServerProcess | undefined;
  let auditKey: string;
  /** The newest signed head's size in the pristine file, and the seqs of the key creations under it. */
  let headSize: number;
  let creates: number[];

  const startNode = async () => {
    node = await startServer(["--dev", "--dev-root-token", TOKEN, "--data-dir", data]);
  };
  const stopNode = async () => {
    await node?.stop();
    node = undefined;
  };
  const headOf = async () => {
    const res = await fetch(`${node!.url}/v1/audit/head`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return (await res.json()) as { size: number; publicKey: string };
  };
  /** Edits the stopped node's file, then starts the node on it. */
  const tamper = async (edit: (db: Database.Database) => void) => {
    await stopNode();
    const db = new Database(dbFile);
    try {
      db.transaction(() => edit(db))();
    } finally {
      db.close();
    }
    await startNode();
  };
  const verify = async () => {
    const r = await runCli(["audit", "verify", "--audit-key", auditKey, "--format", "json"], {
      CUSTOS_ADDR: node!.url,
      CUSTOS_TOKEN: TOKEN,
    });
    return { ...r, verdict: JSON.parse(r.stdout) as Verdict };
  };
  const swapRows = (db: Database.Database, a: number, b: number) => {
    const get = db.prepare("SELECT event, hash, leaf FROM audit_events WHERE seq = ?");
    const put = db.prepare("UPDATE audit_events SET event = ?, hash = ?, leaf = ? WHERE seq = ?");
    const ra = get.get(a) as { event: string; hash: Buffer; leaf: Buffer };
    const rb = get.get(b) as { event: string; hash: Buffer; leaf: Buffer };
    put.run(rb.event, rb.hash, rb.leaf, a);
    put.run(ra.event, ra.hash, ra.leaf, b);
  };

  beforeAll(async () => {
    await startNode();
    for (let i = 0; i < 12; i++) {
      const res = await fetch(`${node!.url}/v1/keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ name: `tamper-${i}` }),
      });
      expect(res.status).toBe(201);
    }
    // Wait for a head over all of them (heads are signed at most once a second).
    await vi.waitFor(async () => expect((await headOf()).size).toBeGreaterThan(14), {
      timeout: 20_000,
      interval: 200,
    });
    auditKey = (await headOf()).publicKey;
    await stopNode();
    // The node closed its database: the WAL was checkpointed into custos.db.
    const wal = `${dbFile}-wal`;
    expect(!existsSync(wal) || statSync(wal).size === 0).toBe(true);
    copyFileSync(dbFile, pristine);
    const db = new Database(pristine, { readonly: true });
    headSize = (db.prepare("SELECT max(size) AS n FROM audit_heads").get() as { n: number }).n;
    creates = (
      db
        .prepare("SELECT seq FROM audit_events WHERE operation = 'keys.create' AND seq <= ? ORDER BY seq")
        .all(headSize) as { seq: number }[]
    ).map((r) => r.seq);
    db.close();
    expect(creates.length).toBeGreaterThanOrEqual(10);
  }, 120_000);

  // Each case starts the node on the pristine file with its own edit (tamper), and stops it after.
  afterEach(async () => {
    await stopNode();
    for (const f of [dbFile, `${dbFile}-wal`, `${dbFile}-shm`]) rmSync(f, { force: true });
    copyFileSync(pristine, dbFile);
  });

  afterAll(async () => {
    await stopNode();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the untouched file verifies", async () => {
    await tamper(() => {});
    const r = await verify();
    expect(r.code, r.stderr).toBe(0);
    expect(r.verdict).toMatchObject({ ok: true, signedHead: { ok: true } });
  });

  it("one byte of an event's canonical JSON altered: that event, 'altered'", async () => {
    const seq = creates[2]!;
    await tamper((db) => {
      const { event } = db.prepare("SELECT event FROM audit_events WHERE seq = ?").get(seq) as {
        event: string;
      };
      const edited = event.replace('"operation":"keys.create"', '"operation":"keys.crEate"');
      expect(edited.length).toBe(event.length);
      expect(edited).not.toBe(event);
      db.prepare("UPDATE audit_events SET event = ? WHERE seq = ?").run(edited, seq);
    });
    const r = await verify();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`audit chain broken at event ${seq}`);
    expect(r.verdict).toMatchObject({ ok: false, firstBadSeq: seq, kind: "altered" });
    expect(r.verdict.problem).toMatch(new RegExp(`^event ${seq} does not chain: altered`));
    // The stored leaf hashes were left alone, so only the event text betrays it: the root no longer matches.
    expect(r.verdict.signedHead).toMatchObject({ ok: false, problem: "altered_events" });
  });

  it("one event deleted: its index, 'deleted'", async () => {
    const seq = creates[3]!;
    await tamper((db) => {
      db.prepare("DELETE FROM audit_subjects WHERE seq = ?").run(seq);
      db.prepare("DELETE FROM audit_events WHERE seq = ?").run(seq);
    });
    const r = await verify();
    expect(r.code).toBe(1);
    expect(r.verdict).toMatchObject({ ok: false, firstBadSeq: seq, kind: "deleted" });
    expect(r.verdict.problem).toContain(`event ${seq} is missing`);
    // The node's own start-up check of its newest head trips too.
    await vi.waitFor(() => expect(node!.output()).toMatch(/the log holds \d+ of events 1\.\.\d+/), {
      timeout: 5_000,
    });
  });

  it("two events swapped: the first of them, 'reordered'", async () => {
    const [a, b] = [creates[4]!, creates[6]!];
    await tamper((db) => swapRows(db, a, b));
    const r = await verify();
    expect(r.code).toBe(1);
    expect(r.verdict).toMatchObject({ ok: false, firstBadSeq: a, kind: "reordered" });
    expect(r.verdict.problem).toContain(`the event at position ${a} is seq ${b}`);
    await vi.waitFor(
      () => expect(node!.output()).toMatch(/does not match the stored events: the log was altered/),
      {
        timeout: 5_000,
      },
    );
  });

  it("the log truncated below a signed head: 'truncated_log', naming the head's size", async () => {
    const keep = creates[1]!;
    await tamper((db) => {
      db.prepare("DELETE FROM audit_subjects WHERE seq > ?").run(keep);
      db.prepare("DELETE FROM audit_events WHERE seq > ?").run(keep);
    });
    const r = await verify();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("signed tree head check failed: truncated_log");
    expect(r.verdict.ok).toBe(true); // what is left chains...
    expect(r.verdict.events).toBeLessThan(headSize); // ...but the newest head covers more
    expect(r.verdict.signedHead).toMatchObject({ ok: false, problem: "truncated_log" });
    expect(r.verdict.signedHead!.detail).toBe(
      `the head covers ${headSize} events but the log has ${r.verdict.events}`,
    );
    await vi.waitFor(() => expect(node!.output()).toMatch(`the signed head covers ${headSize} events`), {
      timeout: 5_000,
    });
  });

  it("the newest head re-signed with another key: 'bad_signature' at that size", async () => {
    const other = Secret.of(ed25519.utils.randomSecretKey());
    expect(auditPublicKey(other)).not.toEqual(auditKey);
    await tamper((db) => {
      const { timestamp } = db.prepare("SELECT timestamp FROM audit_heads WHERE size = ?").get(headSize) as {
        timestamp: number;
      };
      const forged = signTreeHead(other, headSize, timestamp, new Uint8Array(32).fill(7));
      db.prepare("UPDATE audit_heads SET root = ?, signature = ? WHERE size = ?").run(
        Buffer.from(forged.root),
        Buffer.from(forged.signature),
        headSize,
      );
    });
    const r = await verify();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("signed tree head check failed: bad_signature");
    expect(r.verdict.signedHead).toMatchObject({
      ok: false,
      problem: "bad_signature",
      detail: `the signature on the head of size ${headSize} does not verify`,
    });
    await vi.waitFor(
      () => expect(node!.output()).toMatch(/does not match the stored events: the log was altered/),
      {
        timeout: 5_000,
      },
    );
  });
});
