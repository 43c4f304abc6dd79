/**
 * Attacks on a share node and on what the custos node reads from its peers
 * (issue 10), performed against a real `custos share-node` process and real
 * HTTP servers posing as peers:
 *
 * - finding 12: node A's repository token reads and overwrites node B's share;
 * - finding 18: a share node, PostgreSQL table, directory or witness answers
 *   with an endless or huge body;
 * - finding 6: a 400 MB body (declared, then chunked) at the share node, and a
 *   flood of refused requests each costing an audit line and an fdatasync.
 *
 * One share node serves the whole file; the finding 6 flood stops it last, to
 * read the summary line it writes on the way out.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Auditor } from "../../src/audit/auditor.js";
import { WitnessCollector } from "../../src/audit/witness-collector.js";
import { b64u, hex, randomBytes, utf8 } from "../../src/crypto/bytes.js";
import { NodeIdentity } from "../../src/custody/node-identity.js";
import { NodeShares } from "../../src/custody/node-shares.js";
import { SealManager } from "../../src/custody/seal.js";
import { DirectoryRepository } from "../../src/repository/directory.js";
import { PostgresRepository } from "../../src/repository/postgres.js";
import { ShareNodeRepository } from "../../src/repository/share-node-client.js";
import type { ShareRepository } from "../../src/repository/share-repository.js";
import { PARTIAL_AUDIT_FILE } from "../../src/share-node/partial-audit.js";
import { openSqliteStore } from "../../src/store/sqlite.js";
import type { Store } from "../../src/store/store.js";
import { runCli, type ServerProcess, startCustos } from "./harness.js";

const TOKEN_A = "node-A-repository-token-0123456789";
const TOKEN_B = "node-B-repository-token-9876543210";
const MB = 1024 * 1024;

/** Resident memory of a process, from /proc (bytes). */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

/** An HTTP server on loopback answering every request with `handler`; closed by the caller. */
async function peer(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** Streams zeros to `res` until the client goes away; counts what was written. */
function endless(res: import("node:http").ServerResponse, sent: { bytes: number }): void {
  const chunk = Buffer.alloc(64 * 1024);
  const pump = () => {
    while (!res.destroyed && sent.bytes < 256 * MB) {
      sent.bytes += chunk.length;
      if (!res.write(chunk)) return void res.once("drain", pump);
    }
  };
  res.on("close", () => undefined);
  pump();
}

const A = NodeIdentity.generate();
const B = NodeIdentity.generate();
let dir: string;
let shareNode: ServerProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "custos-attack-sharenode-"));
  writeFileSync(join(dir, "a.token"), `${TOKEN_A}\n`, { mode: 0o600 });
  writeFileSync(join(dir, "b.token"), `${TOKEN_B}\n`, { mode: 0o600 });
  shareNode = await startCustos([
    "share-node",
    "--listen",
    "127.0.0.1:0",
    "--data-dir",
    join(dir, "share-node"),
    "--allow-node",
    b64u.encode(A.publicKey),
    "--repository-client",
    `${b64u.encode(A.publicKey)}=${join(dir, "a.token")}`,
    "--repository-client",
    `${b64u.encode(B.publicKey)}=${join(dir, "b.token")}`,
  ]);
}, 60_000);

afterAll(async () => {
  await shareNode?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("finding 12: a share node's repository token reaches only its own node's shares", () => {
  it("node A's token can neither read nor overwrite the share node B stored, and B still unseals", async () => {
    // Node B stores its custody tree's repository share the ordinary way.
    const store = await openSqliteStore(join(dir, "b.db"));
    const asB = new ShareNodeRepository({ url: shareNode.url, token: TOKEN_B });
    // A second, local repository only because a tree needs two holders; it is emptied after init.
    const local = new DirectoryRepository(join(dir, "b-local"));
    const sharesOfB = () =>
      new NodeShares({
        identity: B,
        repositories: new Map<string, ShareRepository>([
          ["s1", asB],
          ["d1", local],
        ]),
      });
    const seal = await SealManager.open(store, new Auditor(store), { identity: B, nodeShares: sharesOfB() });
    const { initId } = await seal.initTree({
      threshold: 1,
      of: [{ repository: "s1" }, { repository: "d1" }],
    });
    seal.shutdown();
    rmSync(join(dir, "b-local"), { recursive: true });
    const key = `${initId}/root/repository:s1`;
    const original = await asB.get(key);
    expect(original).not.toBeNull();

    // The attack: node A's operator, holding A's token, asks for B's share and writes over it.
    const url = `${shareNode.url}/v2/repository/shares/${encodeURIComponent(key)}`;
    const asA = { authorization: `Bearer ${TOKEN_A}` };
    const read = await fetch(url, { headers: asA });
    expect(read.status).toBe(403);
    expect(await read.json()).toMatchObject({ error: "wrong_node" });
    const forged = (node: Uint8Array) =>
      JSON.stringify({
        format: "custos-repository-share/v1",
        initId,
        path: "root/repository:s1",
        node: b64u.encode(node),
        enc: "A".repeat(43),
        ciphertext: "AAAA",
      });
    for (const node of [A.publicKey, B.publicKey]) {
      const write = await fetch(url, { method: "PUT", headers: asA, body: forged(node) });
      expect(write.status).toBe(403);
      expect(await write.json()).toMatchObject({ error: "wrong_node" });
    }
    // Through the client too: A's repository sees nothing of B's.
    const clientA = new ShareNodeRepository({ url: shareNode.url, token: TOKEN_A });
    await expect(clientA.get(key)).rejects.toThrow(/HTTP 403 wrong_node/);

    // B's share is untouched: B unseals from it.
    expect(await asB.get(key)).toEqual(original);
    const again = await SealManager.open(store, new Auditor(store), { identity: B, nodeShares: sharesOfB() });
    await again.unsealFromNodeShares();
    expect(again.sealed).toBe(false);
    again.shutdown();
    await store.close();
  }, 60_000);

  it("refuses protocol v1 (unscoped tokens) clearly, on the wire and on the command line", async () => {
    const old = await fetch(
      `${shareNode.url}/v1/repository/shares/${encodeURIComponent(`${"ab".repeat(16)}/root/repository:s1`)}`,
      {
        headers: { authorization: `Bearer ${TOKEN_A}` },
      },
    );
    expect(old.status).toBe(410);
    expect(await old.json()).toMatchObject({ error: "protocol_v1_refused" });
    const cli = await runCli([
      "share-node",
      "--data-dir",
      join(dir, "v1-node"),
      "--listen",
      "127.0.0.1:0",
      "--repository-token-file",
      join(dir, "a.token"),
    ]);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain("--repository-client NODE_KEY=TOKEN_FILE");
  }, 60_000);
});

describe("finding 18: repository/witness answers are capped", () => {
  it("a share node answering with an endless body, or declaring 1 GB, is cut off with an error naming it", async () => {
    const sent = { bytes: 0 };
    const fake = await peer((req, res) => {
      if (req.url?.includes("declared")) {
        res.writeHead(200, { "content-length": String(1024 * MB) });
        endless(res, sent);
      } else {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        endless(res, sent);
      }
    });
    try {
      const repo = new ShareNodeRepository({ url: fake.url, token: TOKEN_A, timeoutMs: 20_000 });
      const key = `${"cd".repeat(16)}/root/repository:s1`;
      const err = (await repo.get(key).catch((e: Error) => e)) as Error;
      expect(err).toBeInstanceOf(Error);
      expect(err.message).toMatch(/share node 127\.0\.0\.1:\d+ is larger than 4096 bytes/);
      // The client stopped reading: what the fake managed to push is what sockets buffer, not the stream.
      expect(sent.bytes).toBeLessThan(64 * MB);
      const declared = new ShareNodeRepository({ url: `${fake.url}/declared`, token: TOKEN_A });
      await expect(declared.get(key)).rejects.toThrow(
        /declares 1073741824 bytes, more than the 4096 accepted/,
      );
    } finally {
      fake.server.closeAllConnections();
      fake.server.close();
    }
  }, 60_000);

  it("a witness answering with an endless body is cut off; the round reports it and the node goes on", async () => {
    const sent = { bytes: 0 };
    const fake = await peer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"cosignature":"');
      endless(res, sent);
    });
    try {
      const collector = new WitnessCollector(
        {} as Store, // never reached: the answer is refused first
        { urls: [fake.url], keys: [] },
        () => new Uint8Array(32),
        pino({ level: "silent" }),
      );
      const [result] = await collector.collect();
      expect(result).toMatchObject({ status: "error" });
      expect(result && "detail" in result ? result.detail : "").toMatch(
        new RegExp(`the answer of witness ${fake.url} is larger than 65536 bytes`),
      );
      expect(sent.bytes).toBeLessThan(64 * MB);
    } finally {
      fake.server.closeAllConnections();
      fake.server.close();
    }
  }, 60_000);

  it("a directory holding a huge file or a FIFO under a share's name is refused without reading it", async () => {
    const repoDir = join(dir, "huge-dir");
    mkdirSync(repoDir);
    const key = `${"ef".repeat(16)}/root/repository:d1`;
    writeFileSync(join(repoDir, `${key.replaceAll("/", "+")}.share`), Buffer.alloc(8 * MB));
    await expect(new DirectoryRepository(repoDir).get(key)).rejects.toThrow(/more than a share's 4096/);
    const fifoKey = `${"ef".repeat(16)}/root/repository:d2`;
    const made = await runFifo(join(repoDir, `${fifoKey.replaceAll("/", "+")}.share`));
    if (made)
      await expect(new DirectoryRepository(repoDir).get(fifoKey)).rejects.toThrow(/not a regular file/);
  });

  it("a PostgreSQL row of 8 MB is refused by its length, not transferred", async () => {
    const url = "postgres://postgres@127.0.0.1:5432/test";
    const admin = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    try {
      await admin.connect();
    } catch {
      if (process.env.CI === "true") throw new Error("PostgreSQL unreachable under CI");
      console.warn("*** finding 18: PostgreSQL unreachable, the PostgreSQL cap is not checked ***");
      return;
    }
    const table = `custos_attack_${hex.encode(randomBytes(6))}`;
    const repo = new PostgresRepository({ connectionString: url, table });
    try {
      const key = `${"ab".repeat(16)}/root/repository:p1`;
      await repo.put(key, utf8("small"));
      await admin.query(`UPDATE ${table} SET share = $1 WHERE id = $2`, [Buffer.alloc(8 * MB), key]);
      await expect(repo.get(key)).rejects.toThrow(
        /holds 8388608 bytes for this key, more than a share's 4096/,
      );
    } finally {
      await repo.close();
      await admin.query(`DROP TABLE IF EXISTS ${table}`);
      await admin.end();
    }
  }, 30_000);
});

/** mkfifo through the shell (Node has no binding); false where it is unavailable. */
async function runFifo(path: string): Promise<boolean> {
  const { execFileSync } = await import("node:child_process");
  try {
    execFileSync("mkfifo", [path]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Sends `total` bytes of zeros as the body of a POST to the share node, in
 * 1 MiB writes, until the node answers or drops the connection (or, all
 * sent, 10 s pass); resolves with the answer's status (0 when none came) and
 * the node's highest RSS seen.
 */
function flood(
  url: string,
  headers: Record<string, string>,
  total: number,
  pid: number,
): Promise<{ status: number; body: string; peak: number; error?: string }> {
  return new Promise((resolve) => {
    let error: string | undefined;
    let gaveUp = false; // our own destroy() also reports ECONNRESET: not the node's doing
    let peak = rss(pid);
    const watch = setInterval(() => {
      peak = Math.max(peak, rss(pid));
    }, 20);
    let status = 0;
    let body = "";
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearInterval(watch);
      // The node's memory once it has dealt with the request (a buffered body would still be held).
      setTimeout(() => resolve({ status, body, error, peak: Math.max(peak, rss(pid)) }), 300);
    };
    const req = request(`${url}/v1/threshold/partial`, { method: "POST", headers }, (res) => {
      status = res.statusCode ?? 0;
      res.on("data", (d: Buffer) => {
        body += d.toString();
      });
      res.on("end", finish);
      res.on("error", finish);
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (!gaveUp) error = err.code ?? err.message;
      finish();
    });
    const chunk = Buffer.alloc(MB);
    let written = 0;
    const pump = () => {
      while (!done && !req.destroyed && written < total) {
        written += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      if (written >= total && !req.destroyed) {
        // All sent and no answer (a node still waiting for the declared rest): give up after a while.
        setTimeout(() => {
          gaveUp = true;
          req.destroy();
          finish();
        }, 10_000).unref();
      }
    };
    pump();
  });
}

/**
 * The node answers 413 `too_large` and closes without reading the rest. A
 * client still writing megabytes may then see the connection reset before it
 * has parsed that answer (the kernel resets a socket closed with unread data),
 * which on a loaded machine happens now and then: that too is the node
 * refusing early. Any other outcome (a 2xx, a 4xx of another kind, a hang
 * the client gave up on) is a failure.
 */
function refusedEarly(r: { status: number; body: string; error?: string }): void {
  if (r.status === 0) {
    expect(["ECONNRESET", "EPIPE"], `no answer, and the error was ${r.error}`).toContain(r.error);
    return;
  }
  expect(r.status).toBe(413);
  expect(JSON.parse(r.body)).toMatchObject({ error: "too_large" });
}

describe("finding 6: share node memory exhaustion and refused-request audit flood", () => {
  it("a 400 MB body, declared or chunked, is refused with 413 early and the node's RSS stays bounded", async () => {
    const pid = shareNode.child.pid as number;
    const before = rss(pid);
    // Unauthenticated, declaring 400 MB, streaming 200 MB of it.
    const declared = await flood(
      shareNode.url,
      { "content-type": "application/json", "content-length": String(400 * MB) },
      200 * MB,
      pid,
    );
    expect(declared.peak - before).toBeLessThan(64 * MB);
    refusedEarly(declared);
    // Chunked (no length declared), with headers naming an allowed node and a fresh time:
    // it passes the checks that need no body, and is cut off by the count.
    const chunked = await flood(
      shareNode.url,
      {
        "content-type": "application/json",
        "transfer-encoding": "chunked",
        "x-custos-node": b64u.encode(A.publicKey),
        "x-custos-timestamp": String(Date.now()),
        "x-custos-nonce": hex.encode(randomBytes(16)),
        "x-custos-signature": b64u.encode(new Uint8Array(64)),
      },
      200 * MB,
      pid,
    );
    expect(chunked.peak - before).toBeLessThan(64 * MB);
    refusedEarly(chunked);
    // The node still answers.
    expect((await fetch(`${shareNode.url}/v1/threshold/info`)).status).toBe(200);
  }, 120_000);

  it("a flood of refused requests writes one summary line, not a line and an fdatasync each", async () => {
    const N = 300;
    const send = () =>
      fetch(`${shareNode.url}/v1/threshold/partial`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      }).then((r) => r.status);
    for (let i = 0; i < N; i += 30) {
      const statuses = await Promise.all(Array.from({ length: Math.min(30, N - i) }, send));
      expect(new Set(statuses)).toEqual(new Set([401]));
    }
    const auditPath = join(dir, "share-node", PARTIAL_AUDIT_FILE);
    const lines = () =>
      readFileSync(auditPath, { encoding: "utf8", flag: "a+" })
        .split("\n")
        .filter(Boolean)
        .map(
          (l) =>
            JSON.parse(l) as { op: string; total?: number; refusals?: { reason: string; count: number }[] },
        );
    // Nothing written per refusal while the node runs.
    expect(lines().filter((l) => l.op === "refused")).toEqual([]);
    // On shutdown (or once a minute) the counts go out as one line.
    await shareNode.stop();
    const summaries = lines().filter((l) => l.op === "refused.summary");
    expect(summaries.length).toBe(1);
    expect(summaries[0]!.total).toBeGreaterThanOrEqual(N);
    expect(summaries[0]!.refusals).toContainEqual(expect.objectContaining({ reason: "missing", count: N }));
  }, 120_000);
});
