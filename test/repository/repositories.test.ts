/**
 * Share repositories against the real things: a PostgreSQL table (127.0.0.1:5432,
 * database `test`, a schema of its own per run), directories, and a real
 * `custos share-node` process. Unattended unseal of a 3-of-5 tree with two
 * repositories down; a clear error naming them when three are down; a
 * corrupted row named and skipped; a mixed tree over directory, PostgreSQL
 * and share node; and the credentials (connection-string password, share-node
 * token) never appear in a log line or an error. PostgreSQL unreachable: the
 * PostgreSQL suites skip loudly on a laptop and fail under CI=true.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pg from "pg";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Auditor } from "../../src/audit/auditor.js";
import { b64u, randomBytes, utf8 } from "../../src/crypto/bytes.js";
import { NodeIdentity } from "../../src/custody/node-identity.js";
import { NodeShares } from "../../src/custody/node-shares.js";
import { SealManager } from "../../src/custody/seal.js";
import type { TreeInput } from "../../src/custody/tree.js";
import { unsealUnattended } from "../../src/custody/unattended.js";
import { type RepositoryConfig, repositoryConfig } from "../../src/repository/config.js";
import { PostgresRepository } from "../../src/repository/postgres.js";
import { ShareNodeRepository } from "../../src/repository/share-node-client.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite.js";
import { type ServerProcess, startCustos } from "../e2e/harness.js";

const PASSWORD = "s3cret-PASSWORD-never-logged";
const TOKEN = "share-node-TOKEN-never-logged-0123456789";
const PG = `postgres://postgres:${PASSWORD}@127.0.0.1:5432/test`;
const PG_DOWN = `postgres://postgres:${PASSWORD}@127.0.0.1:1/test`;

async function pgReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

const ci = process.env.CI === "true";
const reachable = await pgReachable();
const skipPg = !reachable && !ci;
if (skipPg) {
  console.warn(
    "\n*** SKIPPING POSTGRESQL REPOSITORY TESTS: no PostgreSQL at 127.0.0.1:5432 (database test) ***\n",
  );
}

/** A pino logger writing into `lines`, at debug, so nothing the code logs escapes the check. */
function captureLog(lines: string[]) {
  return pino(
    { level: "debug" },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    }),
  );
}

describe.skipIf(skipPg)("PostgreSQL share repository", () => {
  const schema = `custos_t_${Buffer.from(randomBytes(6)).toString("hex")}`;
  let admin: pg.Client;
  let dir: string;
  let store: SqliteStore;
  const identity = NodeIdentity.generate();
  const NAMES = ["p1", "p2", "p3", "p4", "p5"];
  const TREE: TreeInput = { threshold: 3, of: NAMES.map((n) => ({ repository: n })) };

  /** The node's repository configuration with the named repositories pointing at a closed port. */
  const config = (downs: string[]): RepositoryConfig =>
    repositoryConfig(
      {
        timeoutMs: 2000,
        repositories: Object.fromEntries(
          NAMES.map((n) => [
            n,
            {
              type: "postgres",
              connectionString: downs.includes(n) ? PG_DOWN : PG,
              table: `${schema}.shares_${n}`,
            },
          ]),
        ),
      },
      dir,
    );

  const open = async (downs: string[], log: pino.Logger) => {
    const cfg = config(downs);
    const nodeShares = new NodeShares({
      identity,
      repositories: cfg.repositories,
      timeoutMs: cfg.timeoutMs,
      secrets: cfg.secrets,
      log,
    });
    const seal = await SealManager.open(store, new Auditor(store, log), { identity, nodeShares });
    return { seal, nodeShares };
  };

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: PG });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    dir = mkdtempSync(join(tmpdir(), "custos-pg-"));
    store = await openSqliteStore(join(dir, "custos.db"));
    const { seal, nodeShares } = await open([], pino({ level: "silent" }));
    await seal.initTree(TREE);
    seal.shutdown();
    await nodeShares.close();
  });

  afterAll(async () => {
    await admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin?.end();
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("stores one row per share and reads it back; an unknown key is null; bad keys are refused", async () => {
    const repo = new PostgresRepository({ connectionString: PG, table: `${schema}.direct` });
    const key = `${"ab".repeat(16)}/root/repository:p1`;
    await repo.put(key, new Uint8Array([1, 2, 3]));
    await repo.put(key, new Uint8Array([4, 5]));
    expect(await repo.get(key)).toEqual(new Uint8Array([4, 5]));
    expect(await repo.get(`${"cd".repeat(16)}/root/repository:p1`)).toBeNull();
    await expect(repo.put("../etc/passwd", new Uint8Array([1]))).rejects.toThrow(/key must be/);
    expect(() => new PostgresRepository({ connectionString: PG, table: 'x"; DROP TABLE y; --' })).toThrow(
      /table must match/,
    );
    await repo.close();
  });

  it("unseals unattended with N−k = 2 repositories down, naming them; never logs the credentials", async () => {
    const lines: string[] = [];
    const log = captureLog(lines);
    const { seal, nodeShares } = await open(["p2", "p4"], log);
    expect(await unsealUnattended(seal, log)).toBe(true);
    expect(seal.sealed).toBe(false);
    seal.shutdown();
    await nodeShares.close();
    const events = await store.readAudit({ fromSeq: 1, limit: 1000 });
    const read = events.filter((e) => e.event.operation === "sys.unseal.repositories").at(-1);
    expect(read?.event.reason).toMatch(/failed: .*root\/repository:p[24]: unreachable/);
    const text = lines.join("") + JSON.stringify(events);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(PG);
  }, 30_000);

  it("with 3 down, a clear error names every one of them and the short gate", async () => {
    const lines: string[] = [];
    const log = captureLog(lines);
    const { seal, nodeShares } = await open(["p1", "p3", "p5"], log);
    const err = (await seal.unsealFromNodeShares().catch((e: Error) => e)) as Error;
    expect(err.message).toMatch(/^cannot unseal from repositories: root needs 1 more of 3; failed: /);
    for (const n of ["p1", "p3", "p5"])
      expect(err.message).toContain(`root/repository:${n}: unreachable: connect ECONNREFUSED 127.0.0.1:1`);
    expect(await unsealUnattended(seal, log)).toBe(false);
    expect(seal.sealed).toBe(true);
    seal.shutdown();
    await nodeShares.close();
    expect(err.message).not.toContain(PASSWORD);
    expect(lines.join("")).not.toContain(PASSWORD);
    expect(lines.join("")).toContain("unattended unseal did not succeed");
  }, 30_000);

  it("a repository returning a corrupted share is named and skipped", async () => {
    await admin.query(`UPDATE ${schema}.shares_p1 SET share = convert_to('{"format":"garbage"}', 'UTF8')`);
    await admin.query(
      `UPDATE ${schema}.shares_p2 SET share = overlay(share placing '\\x00'::bytea from 60 for 1)`,
    );
    const { seal, nodeShares } = await open(["p3"], pino({ level: "silent" }));
    const err = (await seal.unsealFromNodeShares().catch((e: Error) => e)) as Error;
    expect(err.message).toContain("root/repository:p1: bad share: the share inside does not match");
    expect(err.message).toContain("root/repository:p2: bad share");
    seal.shutdown();
    await nodeShares.close();
    // With p3 back, p3 p4 p5 are three good ones: p1 and p2 are skipped.
    const again = await open([], pino({ level: "silent" }));
    const { failures } = await again.seal.unsealFromNodeShares();
    expect(again.seal.sealed).toBe(false);
    for (const f of failures) expect(f.path).toMatch(/root\/repository:p[12]/);
    again.seal.shutdown();
    await again.nodeShares.close();
  }, 30_000);
});

describe("share node repository (a real custos share-node process)", () => {
  let dir: string;
  let shareNode: ServerProcess;
  // The custos node the share node keeps shares for: its token is scoped to this identity.
  const identity = NodeIdentity.generate();
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "custos-sharenode-"));
    writeFileSync(join(dir, "token"), `${TOKEN}\n`, { mode: 0o600 });
    shareNode = await startCustos([
      "share-node",
      "--listen",
      "127.0.0.1:0",
      "--data-dir",
      join(dir, "node"),
      "--repository-client",
      `${b64u.encode(identity.publicKey)}=${join(dir, "token")}`,
    ]);
  }, 30_000);
  afterAll(async () => {
    await shareNode?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("stores and returns shares for the right token, refuses others, and never echoes the token", async () => {
    const repo = new ShareNodeRepository({ url: shareNode.url, token: TOKEN });
    const key = `${"ef".repeat(16)}/root/2/repository:s1`;
    // The share node reads only the labels of what it stores (it cannot open it).
    const doc = utf8(
      JSON.stringify({
        format: "custos-repository-share/v1",
        initId: "ef".repeat(16),
        path: "root/2/repository:s1",
        node: b64u.encode(identity.publicKey),
        enc: "A".repeat(43),
        ciphertext: "AAAA",
      }),
    );
    expect(await repo.get(key)).toBeNull();
    await repo.put(key, doc);
    expect(await repo.get(key)).toEqual(doc);
    const wrong = new ShareNodeRepository({ url: shareNode.url, token: "x".repeat(32) });
    const err = (await wrong.get(key).catch((e: Error) => e)) as Error;
    expect(err.message).toContain("HTTP 401");
    expect(err.message).not.toContain(TOKEN);
    const res = await fetch(`${shareNode.url}/v2/repository/shares/${encodeURIComponent("../../x")}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(400);
  });

  it("a mixed 2-of-3 tree over a directory, PostgreSQL and the share node unseals with any two", async () => {
    const store = await openSqliteStore(join(dir, "mixed.db"));
    const schema = `custos_m_${Buffer.from(randomBytes(6)).toString("hex")}`;
    const make = (entries: Record<string, unknown>) =>
      repositoryConfig({ timeoutMs: 1500, repositories: entries }, dir);
    const entries = {
      d1: { type: "directory", path: "repo-d1" },
      ...(skipPg ? {} : { p1: { type: "postgres", connectionString: PG, table: `${schema}_shares` } }),
      s1: { type: "share-node", url: shareNode.url, token: TOKEN },
    };
    const tree: TreeInput = { threshold: 2, of: Object.keys(entries).map((n) => ({ repository: n })) };
    const all = make(entries);
    const nodeShares = new NodeShares({ identity, repositories: all.repositories, secrets: all.secrets });
    const seal = await SealManager.open(store, new Auditor(store), { identity, nodeShares });
    await seal.initTree(tree);
    seal.shutdown();
    // The share node down (wrong port): the directory and PostgreSQL (or, without it, nothing else) answer.
    const { s1: _gone, ...rest } = entries;
    const downed = make({ ...rest, s1: { type: "share-node", url: "http://127.0.0.1:1", token: TOKEN } });
    const later = await SealManager.open(store, new Auditor(store), {
      identity,
      nodeShares: new NodeShares({ identity, repositories: downed.repositories, secrets: downed.secrets }),
    });
    if (skipPg) {
      const err = (await later.unsealFromNodeShares().catch((e: Error) => e)) as Error;
      expect(err.message).toContain("root/repository:s1: unreachable: share node 127.0.0.1:1 did not answer");
      expect(err.message).not.toContain(TOKEN);
    } else {
      const { failures } = await later.unsealFromNodeShares();
      expect(later.sealed).toBe(false);
      for (const f of failures) expect(f.path).toBe("root/repository:s1");
      const admin = new pg.Client({ connectionString: PG });
      await admin.connect();
      await admin.query(`DROP TABLE IF EXISTS ${schema}_shares`);
      await admin.end();
    }
    later.shutdown();
    await nodeShares.close();
    await store.close();
  }, 30_000);
});
