/**
 * The witness's decisions (docs/FORMATS.md §8.3) against an in-memory log that
 * signs real heads and serves real RFC 9162 consistency proofs: it pins the
 * log's key on first sight and countersigns; countersigns growth only with a
 * valid proof; refuses another key, a bad signature and a mismatched explicit
 * pin without raising an alarm; on a fork (same size, other root) or a
 * rollback (a smaller head signed later) it keeps both signed heads as
 * evidence, logs an error, shows the alarm and countersigns nothing more; a
 * proof that is malformed or does not verify, and an older head served again,
 * are only errors (issue 10, finding 18): no alarm, and countersigning goes on
 * once the node answers well. Then its HTTP API, through `app.request()`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createWitnessApp } from "../../src/api/witness-app.js";
import { cosignatureFromJson, verifyCosignature } from "../../src/audit/cosignature.js";
import { consistencyProof, leafHash, treeHead } from "../../src/audit/merkle.js";
import {
  auditPublicKey,
  signTreeHead,
  type TreeHeadJson,
  treeHeadFromJson,
  treeHeadToJson,
  verifyTreeHead,
} from "../../src/audit/tree-head.js";
import { type LogSource, retryDelayMs, Witness } from "../../src/audit/witness.js";
import { generateWitnessKey } from "../../src/audit/witness-key.js";
import { WitnessStore } from "../../src/audit/witness-store.js";
import { b64u, hex, utf8 } from "../../src/crypto/bytes.js";
import { Secret } from "../../src/crypto/secret.js";

/** A node's log as a witness sees it: leaves, a signing key, and what it serves. */
class FakeLog {
  leaves: Uint8Array[] = [];
  served: TreeHeadJson | null = null;
  proofOverride: string[] | null = null;
  /** What `headAtMost` answers; by default an honest node's head of that size. */
  atMost: TreeHeadJson | null | undefined = undefined;
  failing = false;
  constructor(readonly key: Secret = Secret.of(ed25519.utils.randomSecretKey())) {}
  get publicKey() {
    return auditPublicKey(this.key);
  }
  append(n: number, tag: string): this {
    for (let i = 0; i < n; i++) this.leaves.push(leafHash(utf8(`${tag}-${this.leaves.length}`)));
    return this;
  }
  /** Another history under the same key, sharing the first `keep` leaves (a restored node). */
  fork(keep: number): FakeLog {
    const f = new FakeLog(this.key);
    f.leaves = this.leaves.slice(0, keep);
    return f;
  }
  head(size = this.leaves.length, timestamp = 1_764_000_000_000 + size): TreeHeadJson {
    return treeHeadToJson(
      signTreeHead(this.key, size, timestamp, treeHead(this.leaves, size)),
      this.publicKey,
    );
  }
  source(url = "http://node-a", pinnedKey?: string): LogSource {
    return {
      url,
      ...(pinnedKey ? { pinnedKey } : {}),
      head: async () => {
        if (this.failing) throw new Error("connection refused");
        return this.served ?? this.head();
      },
      consistency: async (from, to) =>
        this.proofOverride ?? consistencyProof(this.leaves, from, to).map((p) => hex.encode(p)),
      headAtMost: async (size) =>
        this.atMost !== undefined ? this.atMost : this.head(Math.min(size, this.leaves.length)),
    };
  }
}

describe("Witness", () => {
  let dir: string;
  let store: WitnessStore;
  let witness: Witness;
  let logged: { level: number; msg: string; alarm?: string }[];
  let clock: number;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "custos-witness-"));
    store = WitnessStore.open(dir);
    logged = [];
    const sink = { write: (line: string) => logged.push(JSON.parse(line)) };
    clock = 1_765_000_000_000;
    witness = new Witness(
      store,
      generateWitnessKey("msk-mirror"),
      pino({ level: "debug" }, sink),
      () => clock++,
    );
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const newest = (log: FakeLog) => store.head(b64u.encode(log.publicKey));

  it("pins the log's key on first sight and countersigns; the countersignature verifies", async () => {
    const log = new FakeLog().append(5, "a");
    expect(await witness.poll(log.source())).toEqual({ status: "cosigned", size: 5 });
    expect(store.pinnedLog("http://node-a")).toBe(b64u.encode(log.publicKey));
    const stored = newest(log)!;
    expect(verifyCosignature(stored.cosignature)).toBe(true);
    expect(stored.cosignature).toMatchObject({ witness: "msk-mirror", size: 5 });
    expect(hex.encode(stored.cosignature.log)).toBe(hex.encode(log.publicKey));
    expect(await witness.poll(log.source())).toEqual({ status: "unchanged", size: 5 });
  });

  it("countersigns growth only with a consistency proof from the last head", async () => {
    const log = new FakeLog().append(3, "a");
    await witness.poll(log.source());
    log.append(6, "a");
    expect(await witness.poll(log.source())).toEqual({ status: "cosigned", size: 9 });
    expect(store.heads(b64u.encode(log.publicKey), 1, 10).map((h) => h.head.size)).toEqual([3, 9]);
  });

  it("refuses a head signed by another key, or with a bad signature, without an alarm", async () => {
    const log = new FakeLog().append(4, "a");
    await witness.poll(log.source());
    const impostor = new FakeLog().append(6, "a");
    const r1 = await witness.poll(impostor.source());
    expect(r1).toMatchObject({ status: "refused", problem: "wrong_key" });
    log.append(2, "a");
    const head = log.head();
    log.served = { ...head, signature: b64u.encode(new Uint8Array(64).fill(7)) };
    expect(await witness.poll(log.source())).toMatchObject({ status: "refused", problem: "bad_signature" });
    expect(newest(log)!.head.size).toBe(4);
    expect(store.evidence()).toEqual([]);
    expect(witness.status(["http://node-a"]).logs[0]).toMatchObject({ alarm: null, size: 4 });
    expect(logged.some((l) => l.level === 50 && /refused/.test(l.msg))).toBe(true);
  });

  it("refuses a log whose key differs from the one pinned with --log-key", async () => {
    const log = new FakeLog().append(2, "a");
    const other = b64u.encode(new FakeLog().publicKey);
    expect(await witness.poll(log.source("http://node-b", other))).toMatchObject({
      status: "refused",
      problem: "wrong_key",
    });
    expect(store.head(b64u.encode(log.publicKey))).toBeNull();
  });

  it("a network failure is only an error: no alarm, countersigning resumes", async () => {
    const log = new FakeLog().append(2, "a");
    log.failing = true;
    expect(await witness.poll(log.source())).toMatchObject({ status: "error" });
    expect(witness.status(["http://node-a"]).logs[0]!.lastError).toMatch(/connection refused/);
    log.failing = false;
    expect(await witness.poll(log.source())).toEqual({ status: "cosigned", size: 2 });
  });

  const expectAlarm = async (kind: string, sizes: [number, number]) => {
    const evidence = store.evidence();
    expect(evidence).toHaveLength(1);
    const e = evidence[0]!;
    expect(e.kind).toBe(kind);
    // Both heads are the node's own, validly signed: proof that holds up without the witness.
    for (const served of [e.seen, e.conflicting]) {
      const { head, publicKey } = treeHeadFromJson(served);
      expect(verifyTreeHead(publicKey, head)).toBe(true);
    }
    expect([e.seen.size, e.conflicting.size]).toEqual(sizes);
    const status = witness.status(["http://node-a"]);
    expect(status.alarm).toBe(true);
    expect(status.logs[0]!.alarm).toMatchObject({ kind });
    expect(logged.some((l) => l.level === 50 && l.alarm === kind && /WITNESS ALARM/.test(l.msg))).toBe(true);
  };

  it("on a fork (same size, another root) keeps both heads, alarms, and stops countersigning", async () => {
    const log = new FakeLog().append(6, "a");
    await witness.poll(log.source());
    const forked = log.fork(4).append(2, "b");
    expect(await witness.poll(forked.source())).toMatchObject({ status: "alarm", kind: "fork" });
    await expectAlarm("fork", [6, 6]);
    log.append(3, "a");
    expect(await witness.poll(log.source())).toMatchObject({ status: "halted" });
    expect(newest(log)!.head.size).toBe(6);
  });

  it("on a rollback (a smaller head signed later) keeps both heads and alarms", async () => {
    const log = new FakeLog().append(8, "a");
    await witness.poll(log.source());
    log.served = log.head(5, log.head().timestamp + 1);
    expect(await witness.poll(log.source())).toMatchObject({ status: "alarm", kind: "rollback" });
    await expectAlarm("rollback", [8, 5]);
  });

  it("a larger head signed before the countersigned one is a rollback too", async () => {
    const log = new FakeLog().append(5, "a");
    await witness.poll(log.source());
    log.append(3, "a");
    log.served = log.head(8, log.head(5).timestamp - 1);
    expect(await witness.poll(log.source())).toMatchObject({ status: "alarm", kind: "rollback" });
    await expectAlarm("rollback", [5, 8]);
  });

  it("an older head served again (replayed, cached) is an error, not an alarm", async () => {
    const log = new FakeLog().append(3, "a");
    await witness.poll(log.source());
    log.append(5, "a");
    await witness.poll(log.source());
    log.served = log.head(3);
    expect(await witness.poll(log.source())).toMatchObject({ status: "error" });
    log.served = log.head(5); // never countersigned, signed no later than size 8: still not evidence
    expect(await witness.poll(log.source())).toMatchObject({ status: "error" });
    expect(store.evidence()).toEqual([]);
    log.served = null;
    log.append(1, "a");
    expect(await witness.poll(log.source())).toEqual({ status: "cosigned", size: 9 });
  });

  it("a smaller head with another root than one countersigned at that size is a fork", async () => {
    const log = new FakeLog().append(3, "a");
    await witness.poll(log.source());
    log.append(5, "a");
    await witness.poll(log.source());
    const forked = log.fork(2).append(1, "b");
    expect(await witness.poll(forked.source())).toMatchObject({ status: "alarm", kind: "fork" });
    await expectAlarm("fork", [3, 3]);
  });

  it("finding 18: growth without a valid consistency proof is unproven, not evidence: no alarm, nothing countersigned", async () => {
    const log = new FakeLog().append(5, "a");
    await witness.poll(log.source());
    const forked = log.fork(3).append(6, "b");
    forked.atMost = null; // and the node holds no signed head that contradicts the witness's
    expect(await witness.poll(forked.source())).toMatchObject({ status: "unproven" });
    expect(await witness.poll(forked.source())).toMatchObject({ status: "unproven" });
    expect(store.evidence()).toEqual([]);
    expect(newest(log)!.head.size).toBe(5);
    expect(witness.status(["http://node-a"]).logs[0]).toMatchObject({ alarm: null, size: 5 });
    expect(witness.status(["http://node-a"]).logs[0]!.lastError).toMatch(/does not verify/);
    expect(logged.some((l) => l.level === 40 && /consistency proof/.test(l.msg))).toBe(true);
  });

  it("finding 18: a garbled or wrong proof is retried, and countersigning resumes with a good one", async () => {
    const log = new FakeLog().append(5, "a");
    await witness.poll(log.source());
    log.append(2, "a");
    for (const bad of [["zz"], [hex.encode(new Uint8Array(32).fill(1))], []]) {
      log.proofOverride = bad;
      expect(await witness.poll(log.source()), JSON.stringify(bad)).toMatchObject({ status: "unproven" });
    }
    log.proofOverride = null;
    expect(await witness.poll(log.source())).toEqual({ status: "cosigned", size: 7 });
    expect(store.evidence()).toEqual([]);
    expect(witness.status(["http://node-a"]).alarm).toBe(false);
  });

  it("a rewritten log that outgrew the witness is caught by the node's own smaller head signed later", async () => {
    const log = new FakeLog().append(5, "a");
    await witness.poll(log.source());
    // Restored from a copy of 3 events, it signed a head of 4 after the witness's 5, then grew past it.
    const forked = log.fork(3).append(6, "b");
    forked.atMost = forked.head(4, log.head().timestamp + 50);
    expect(await witness.poll(forked.source())).toMatchObject({ status: "alarm", kind: "rollback" });
    await expectAlarm("rollback", [5, 4]);
    // Signed at the witness's own size with another root: a fork.
    store.close();
    rmSync(dir, { recursive: true, force: true });
    dir = mkdtempSync(join(tmpdir(), "custos-witness-"));
    store = WitnessStore.open(dir);
    witness = new Witness(store, generateWitnessKey("msk-mirror"), pino({ level: "silent" }), () => clock++);
    await witness.poll(log.source());
    forked.atMost = forked.head(5);
    expect(await witness.poll(forked.source())).toMatchObject({ status: "alarm", kind: "fork" });
  });

  it("backs off after failed proofs: the interval doubled per failure, capped", () => {
    expect([0, 1, 2, 3].map((n) => retryDelayMs(1000, n))).toEqual([1000, 2000, 4000, 8000]);
    expect(retryDelayMs(1000, 50)).toBe(64_000);
    expect(retryDelayMs(60_000, 10)).toBe(600_000);
    expect(retryDelayMs(900_000, 3)).toBe(900_000);
  });

  it("evidence an earlier version recorded for a failed proof does not stop countersigning", async () => {
    const log = new FakeLog().append(5, "a");
    await witness.poll(log.source());
    const forked = log.fork(3).append(6, "b");
    store.addEvidence({
      log: b64u.encode(log.publicKey),
      kind: "inconsistent",
      detail: "inconsistent: (recorded by an earlier version)",
      seen: log.head(5),
      conflicting: forked.head(),
      proof: ["zz"],
      recordedAt: 1,
    });
    log.append(2, "a");
    expect(await witness.poll(log.source())).toEqual({ status: "cosigned", size: 7 });
    expect(witness.status(["http://node-a"]).alarm).toBe(false);
  });

  it("keeps logs apart: an alarm on one log does not stop countersigning another", async () => {
    const a = new FakeLog().append(4, "a");
    const b = new FakeLog().append(2, "b");
    await witness.poll(a.source("http://node-a"));
    await witness.poll(b.source("http://node-b"));
    a.served = a.head(3, a.head().timestamp + 1);
    expect(await witness.poll(a.source("http://node-a"))).toMatchObject({
      status: "alarm",
      kind: "rollback",
    });
    b.append(3, "b");
    expect(await witness.poll(b.source("http://node-b"))).toEqual({ status: "cosigned", size: 5 });
    const status = witness.status(["http://node-a", "http://node-b"]);
    expect(status.logs.map((l) => [l.size, l.alarm?.kind ?? null])).toEqual([
      [4, "rollback"],
      [5, null],
    ]);
    expect(store.evidence(b64u.encode(b.publicKey))).toEqual([]);
  });

  it("keeps its record across a restart: the pin and the last head survive", async () => {
    const log = new FakeLog().append(3, "a");
    await witness.poll(log.source());
    store.close();
    store = WitnessStore.open(dir);
    const again = new Witness(store, generateWitnessKey("msk-mirror"), pino({ level: "silent" }));
    const forked = log.fork(2).append(1, "b");
    expect(await again.poll(forked.source())).toMatchObject({ status: "alarm", kind: "fork" });
    expect(await again.poll(new FakeLog().append(9, "c").source())).toMatchObject({ problem: "wrong_key" });
  });

  describe("HTTP API", () => {
    const get = async (app: ReturnType<typeof createWitnessApp>, path: string) => {
      const res = await app.request(path);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };

    it("serves status, heads with countersignatures, one countersignature and evidence", async () => {
      const log = new FakeLog().append(3, "a");
      await witness.poll(log.source());
      log.append(2, "a");
      await witness.poll(log.source());
      const app = createWitnessApp({ witness, urls: ["http://node-a"], log: pino({ level: "silent" }) });
      const id = b64u.encode(log.publicKey);

      const status = await get(app, "/v1/witness/status");
      expect(status.body).toMatchObject({
        witness: "msk-mirror",
        alarm: false,
        logs: [{ log: id, size: 5 }],
      });

      const heads = await get(app, `/v1/witness/heads?log=${id}`);
      const list = heads.body.heads as { head: TreeHeadJson; cosignature: unknown }[];
      expect(list.map((h) => h.head.size)).toEqual([3, 5]);
      for (const h of list) expect(verifyCosignature(cosignatureFromJson(h.cosignature))).toBe(true);
      const page = await get(app, `/v1/witness/heads?log=${id}&limit=1`);
      expect(page.body.next).toBe(4);

      const one = await get(app, `/v1/witness/cosignature?log=${id}&size=3`);
      expect((one.body.head as TreeHeadJson).size).toBe(3);
      const latest = await get(app, `/v1/witness/cosignature?log=${id}`);
      expect((latest.body.cosignature as { size: number }).size).toBe(5);
      expect((await get(app, `/v1/witness/evidence?log=${id}`)).body).toEqual({ evidence: [] });
    });

    it("answers 4xx JSON errors for bad or unknown queries", async () => {
      const app = createWitnessApp({ witness, urls: [], log: pino({ level: "silent" }) });
      const id = b64u.encode(new FakeLog().publicKey);
      for (const [path, status, code] of [
        ["/v1/witness/heads?log=short", 400, "invalid_request"],
        [`/v1/witness/heads?log=${id}&limit=5000`, 400, "invalid_request"],
        [`/v1/witness/heads?log=${id}&extra=1`, 400, "invalid_request"],
        [`/v1/witness/cosignature?log=${id}&size=0`, 400, "invalid_request"],
        [`/v1/witness/cosignature?log=${id}`, 404, "no_cosignature"],
        ["/v1/witness/nothing", 404, "not_found"],
      ] as const) {
        const r = await get(app, path);
        expect(r.status, path).toBe(status);
        expect((r.body.error as { code: string }).code, path).toBe(code);
      }
    });
  });
});
