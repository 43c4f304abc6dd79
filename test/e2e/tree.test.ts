/**
 * A custody tree through the real CLI and real processes:
 * `1 of { 2 of {2-of-3 hospital A, B, C}, 2-of-3 repositories }`, the
 * repositories being a directory, a PostgreSQL table (a second directory when
 * PostgreSQL is unreachable on a laptop) and a real `custos share-node`.
 * `custos operator init --tree`; restart without repositories: custodians of
 * two hospitals unseal, and `custos status` shows what each gate misses on
 * the way; restart with repositories, the share node down: the node unseals
 * by itself; restart with two repositories down: it stays sealed and names
 * them; the credentials appear in no output.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { b64u, randomBytes } from "../../src/crypto/bytes.js";
import { generateCustodianKey } from "../../src/custody/custodian-key.js";
import { NodeIdentity } from "../../src/custody/node-identity.js";
import { type CliResult, runCli, type ServerProcess, startCustos, startServer } from "./harness.js";

const PASSWORD = "e2e-pg-PASSWORD-not-in-logs";
const TOKEN = "e2e-share-node-TOKEN-not-in-logs-42";
const PG = `postgres://postgres:${PASSWORD}@127.0.0.1:5432/test`;
const HOSPITALS = { a: ["a1", "a2", "a3"], b: ["b1", "b2", "b3"], c: ["c1", "c2", "c3"] };

async function pgReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}
const usePg = (await pgReachable()) || process.env.CI === "true";
if (!usePg)
  console.warn(
    "\n*** tree e2e: PostgreSQL unreachable, a directory stands in for the PostgreSQL repository ***\n",
  );

describe("custody tree through the real CLI: hospitals, repositories, restarts", () => {
  let dir: string;
  let server: ServerProcess;
  let shareNode: ServerProcess;
  let env: Record<string, string>;
  const table = `custos_e2e_${Buffer.from(randomBytes(6)).toString("hex")}`;
  const cli = (args: string[]): Promise<CliResult> => runCli(args, env);
  const ok = async (args: string[]) => {
    const r = await cli(args);
    if (r.code !== 0) throw new Error(`custos ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r;
  };
  const status = async () =>
    JSON.parse((await ok(["status", "--format", "json"])).stdout) as {
      sealed: boolean;
      tree: { of: { path: string; missing: number; of: { missing: number }[] }[] };
    };
  const unseal = (who: string) =>
    ok([
      "operator",
      "unseal",
      "--share",
      join(dir, "shares", `${who}.share`),
      "--identity",
      join(dir, "keys", `${who}.key`),
      "--passphrase-file",
      join(dir, "pass"),
    ]);
  const start = async (repositories?: string) => {
    server = await startServer([
      "--data-dir",
      join(dir, "data"),
      "--log-level",
      "info",
      ...(repositories ? ["--repositories", repositories] : []),
    ]);
    env = { CUSTOS_ADDR: server.url };
  };
  const writeRepos = (file: string, pgUrl: string, nodeUrl: string) =>
    writeFileSync(
      join(dir, file),
      [
        "timeoutMs: 2000",
        "repositories:",
        "  dir-1: { type: directory, path: repo-dir-1 }",
        usePg
          ? `  pg-1: { type: postgres, connectionString: "${pgUrl}", table: ${table} }`
          : "  pg-1: { type: directory, path: repo-dir-2 }",
        `  node-1: { type: share-node, url: "${nodeUrl}", tokenFile: node.token }`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "custos-e2e-tree-"));
    mkdirSync(join(dir, "keys"));
    writeFileSync(join(dir, "pass"), "tree passphrase\n", { mode: 0o600 });
    for (const id of Object.values(HOSPITALS).flat()) {
      const { publicFile, privateFile } = await generateCustodianKey(id, "tree passphrase", {
        scryptN: 2 ** 15,
      });
      writeFileSync(join(dir, "keys", `${id}.pub`), JSON.stringify(publicFile));
      writeFileSync(join(dir, "keys", `${id}.key`), JSON.stringify(privateFile), { mode: 0o600 });
    }
    writeFileSync(
      join(dir, "tree.yaml"),
      [
        "threshold: 1",
        "of:",
        "  - name: hospitals",
        "    threshold: 2",
        "    of:",
        ...Object.entries(HOSPITALS).flatMap(([h, ids]) => [
          `      - name: hospital-${h}`,
          "        threshold: 2",
          "        of:",
          ...ids.map((id) => `          - { custodian: ${id}, key: keys/${id}.pub }`),
        ]),
        "  - name: repositories",
        "    threshold: 2",
        "    of:",
        "      - repository: dir-1",
        "      - repository: pg-1",
        "      - repository: node-1",
        "",
      ].join("\n"),
    );
    writeFileSync(join(dir, "node.token"), `${TOKEN}\n`, { mode: 0o600 });
    // The node's identity, made before it first starts, so the share node can scope its token to it.
    mkdirSync(join(dir, "data"), { mode: 0o700 });
    const identity = NodeIdentity.loadOrCreate(join(dir, "data"), false);
    const nodeKey = b64u.encode(identity.publicKey);
    identity.dispose();
    shareNode = await startCustos([
      "share-node",
      "--listen",
      "127.0.0.1:0",
      "--data-dir",
      join(dir, "share-node"),
      "--repository-client",
      `${nodeKey}=${join(dir, "node.token")}`,
    ]);
    writeRepos("repos.yaml", PG, shareNode.url);
    await start(join(dir, "repos.yaml"));
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await shareNode?.stop();
    if (usePg) {
      const admin = new pg.Client({ connectionString: PG });
      await admin.connect().then(
        () => admin.query(`DROP TABLE IF EXISTS ${table}`),
        () => undefined,
      );
      await admin.end().catch(() => {});
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("inits from tree.yaml, unseals by custodians of two hospitals, then by its repositories", async () => {
    const init = await ok([
      "operator",
      "init",
      "--tree",
      join(dir, "tree.yaml"),
      "--out-dir",
      join(dir, "shares"),
      "--root-token-file",
      join(dir, "root.token"),
    ]);
    expect(init.stderr).toContain("custody tree");
    const a1 = JSON.parse(readFileSync(join(dir, "shares", "a1.share"), "utf8")) as {
      format: string;
      path: string;
    };
    expect(a1).toMatchObject({ format: "custos-share/v2", path: "root/1/1/custodian:a1" });
    const text = (await ok(["operator", "status"])).stdout;
    expect(text).toContain("Custody tree:");
    expect(text).toContain("root/2 (repositories): 2 of 3");

    // Restart without repositories: custodians of hospitals A and C.
    await server.stop();
    await start();
    expect((await status()).sealed).toBe(true);
    await unseal("a1");
    const mid = await unseal("a3");
    expect(mid.stdout).toContain("Share of root/1/1/custodian:a3 accepted. Still missing:");
    let s = await status();
    expect(s.tree.of[0]!).toMatchObject({ path: "root/1", missing: 1 });
    expect(s.tree.of[0]!.of[0]!.missing).toBe(0);
    await unseal("c2");
    s = await status();
    expect(s.sealed).toBe(true);
    // The wrong share file for the key is refused locally, before anything is sent.
    const wrong = await cli([
      "operator",
      "unseal",
      "--share",
      join(dir, "shares", "c1.share"),
      "--identity",
      join(dir, "keys", "c3.key"),
      "--passphrase-file",
      join(dir, "pass"),
    ]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("the share belongs to 'c1' but the key to 'c3'");
    expect((await unseal("c3")).stdout).toContain("custos is unsealed");

    // Restart with repositories, the share node down: the directory and PostgreSQL suffice.
    await server.stop();
    writeRepos("repos-node-down.yaml", PG, "http://127.0.0.1:1");
    await start(join(dir, "repos-node-down.yaml"));
    expect((await status()).sealed).toBe(false);
    const log = server.output();
    expect(log).toContain("unsealed by the custody tree's repositories");

    // Two of three repositories down: sealed, and both are named.
    await server.stop();
    writeRepos("repos-two-down.yaml", PG.replace(":5432/", ":1/"), "http://127.0.0.1:1");
    if (!usePg) rmSync(join(dir, "repo-dir-2"), { recursive: true, force: true });
    await start(join(dir, "repos-two-down.yaml"));
    expect((await status()).sealed).toBe(true);
    const again = await cli(["operator", "unseal", "--repositories"]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("root/2 (repositories) needs 1 more of 2");
    expect(again.stderr).toContain("root/2/repository:pg-1:");
    expect(again.stderr).toContain("root/2/repository:node-1: unreachable");
    const all = server.output() + again.stderr + again.stdout;
    expect(all).toContain("unattended unseal did not succeed");
    for (const secret of [PASSWORD, TOKEN]) expect(all).not.toContain(secret);
    expect(log).not.toContain(PASSWORD);
    expect(log).not.toContain(TOKEN);
  }, 180_000);
});
