/**
 * The edges of repositories and tree requests: the `--repositories` file is
 * checked field by field and its credentials never reach a summary or an
 * error; `redact` scrubs them in both plain and URL-encoded form; a directory
 * repository writes 0600 files atomically and refuses keys that are not
 * share keys; the init route refuses a malformed tree, a tree naming an
 * unconfigured repository or a TPM the node lacks — nothing is initialised —
 * and `unseal/repositories` on a flat node says custodians must unseal it.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CustosNode, openNode } from "../../src/api/server.js";
import { b64u } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";
import { redact, repositoryConfig } from "../../src/repository/config.js";
import { DirectoryRepository } from "../../src/repository/directory.js";

const SECRET = "pg-PASSWORD-xyz/with space";

describe("repository configuration", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "custos-repocfg-"));
    writeFileSync(join(dir, "tok"), "a-token-from-a-file-0123456789\n");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("builds each kind, resolves files, and keeps credentials out of the summary", () => {
    const cfg = repositoryConfig(
      {
        timeoutMs: 500,
        repositories: {
          d: { type: "directory", path: "shares" },
          p: { type: "postgres", connectionString: `postgres://u:${encodeURIComponent(SECRET)}@h/db` },
          n: { type: "share-node", url: "https://n.example:8300", tokenFile: "tok" },
        },
      },
      dir,
    );
    expect([...cfg.repositories.keys()]).toEqual(["d", "p", "n"]);
    expect(cfg.timeoutMs).toBe(500);
    expect(cfg.summary).toEqual({
      d: `directory ${join(dir, "shares")}`,
      p: "postgres table custos_shares",
      n: "share node https://n.example:8300",
    });
    expect(cfg.secrets).toContain("a-token-from-a-file-0123456789");
    expect(JSON.stringify(cfg.summary)).not.toContain("PASSWORD");
  });

  it("refuses bad entries with the field named and no credential echoed", () => {
    const bad = (repositories: unknown, message: RegExp) => {
      let err: Error | undefined;
      try {
        repositoryConfig({ repositories }, dir);
      } catch (e) {
        err = e as Error;
      }
      expect(err?.message).toMatch(message);
      expect(err?.message).not.toContain(SECRET);
    };
    bad({ x: { type: "s3" } }, /repositories: repositories\.x\.type/);
    bad({ X: { type: "directory", path: "a" } }, /names must match/);
    bad({ p: { type: "postgres", connectionString: SECRET, table: "a; drop" } }, /repositories\.p\.table/);
    bad(
      { p: { type: "postgres" } },
      /repositories\.p: connectionString \(or connectionStringFile\) is required/,
    );
    bad(
      { n: { type: "share-node", url: "https://n", token: "t".repeat(20), tokenFile: "tok" } },
      /give token or tokenFile, not both/,
    );
    bad(
      { n: { type: "share-node", url: "https://u:p@n", token: "t".repeat(20) } },
      /must not carry credentials/,
    );
    bad({ n: { type: "share-node", url: "https://n", token: "short" } }, /repositories\.n\.token/);
  });

  it("redact scrubs plain and URL-encoded credentials", () => {
    const msg = `failed for postgres://u:${encodeURIComponent(SECRET)}@h and ${SECRET}`;
    const out = redact(msg, [SECRET]);
    expect(out).not.toContain(SECRET);
    expect(out).not.toContain(encodeURIComponent(SECRET));
    expect(out).toContain("[redacted]");
  });
});

describe("directory repository", () => {
  it("writes 0600 files atomically, reads them back, and refuses what is not a share key", async () => {
    const dir = mkdtempSync(join(tmpdir(), "custos-dirrepo-"));
    try {
      const repo = new DirectoryRepository(join(dir, "r"));
      const key = `${"0f".repeat(16)}/root/1/repository:a`;
      await repo.put(key, new Uint8Array([1, 2]));
      await repo.put(key, new Uint8Array([3]));
      expect(await repo.get(key)).toEqual(new Uint8Array([3]));
      expect(await repo.get(`${"0f".repeat(16)}/root/repository:b`)).toBeNull();
      const files = readdirSync(join(dir, "r"));
      expect(files).toEqual([`${"0f".repeat(16)}+root+1+repository:a.share`]);
      expect(statSync(join(dir, "r", files[0]!)).mode & 0o777).toBe(0o600);
      await expect(repo.put("../../etc/passwd", new Uint8Array([1]))).rejects.toThrow(/key must be/);
      await expect(repo.put(key, new Uint8Array(0))).rejects.toThrow(/share must be 1 to 4096 bytes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("tree requests over HTTP", () => {
  let dir: string;
  let node: CustosNode;
  const post = async (path: string, body: unknown) => {
    const res = await node.app.request(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as { error?: { code: string; message: string } } };
  };
  const key = () => b64u.encode(generateX25519KeyPair().publicKey);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "custos-treeapi-"));
    node = await openNode({ dataDir: dir, log: pino({ level: "silent" }) });
  });
  afterAll(async () => {
    await node?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses malformed trees and trees this node cannot serve; nothing is initialised", async () => {
    let r = await post("/v1/sys/init", {
      tree: { threshold: 2, of: [{ custodian: "Bad Id", publicKey: key() }] },
    });
    expect(r.status).toBe(400);
    expect(r.json.error?.code).toBe("invalid_tree");
    r = await post("/v1/sys/init", {
      tree: {
        threshold: 3,
        of: [
          { custodian: "a", publicKey: key() },
          { custodian: "b", publicKey: key() },
        ],
      },
    });
    expect(r.json.error?.message).toContain("gate root has threshold 3 but only 2 member(s)");
    r = await post("/v1/sys/init", {
      tree: { threshold: 2, of: [{ custodian: "a", publicKey: key() }, { repository: "nowhere" }] },
    });
    expect(r.status).toBe(400);
    expect(r.json.error?.message).toContain("this node has no repositories or TPM configured");
    expect(node.seal.initialized).toBe(false);
  });

  it("unseal/repositories on a flat node says custodians must unseal it", async () => {
    await post("/v1/sys/init", {
      threshold: 2,
      custodians: [
        { id: "a", publicKey: key() },
        { id: "b", publicKey: key() },
      ],
    });
    await node.seal.seal("test");
    const r = await post("/v1/sys/unseal/repositories", {});
    expect(r.status).toBe(409);
    expect(r.json.error?.code).toBe("no_node_shares");
  });
});

describe("init with a repository down", () => {
  it("is 503 repository_unavailable naming the leaf, and nothing is initialised", async () => {
    const dir = mkdtempSync(join(tmpdir(), "custos-initdown-"));
    const node = await openNode({
      dataDir: dir,
      log: pino({ level: "silent" }),
      repositories: repositoryConfig(
        {
          timeoutMs: 500,
          repositories: {
            up: { type: "directory", path: "up" },
            gone: { type: "share-node", url: "http://127.0.0.1:1", token: "t".repeat(24) },
          },
        },
        dir,
      ),
    });
    try {
      const res = await node.app.request("/v1/sys/init", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ tree: { threshold: 2, of: [{ repository: "up" }, { repository: "gone" }] } }),
      });
      const json = (await res.json()) as { error: { code: string; message: string } };
      expect(res.status).toBe(503);
      expect(json.error.code).toBe("repository_unavailable");
      expect(json.error.message).toContain("storing the share of root/repository:gone failed");
      expect(json.error.message).toContain("nothing was initialised");
      expect(json.error.message).not.toContain("t".repeat(24));
      expect(node.seal.initialized).toBe(false);
      expect(await node.store.getSealConfig()).toBeNull();
    } finally {
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
