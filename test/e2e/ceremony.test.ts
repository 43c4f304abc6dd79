/**
 * The whole life of a node, driven through the real server and the real CLI
 * as separate processes: five custodians make keys, init 3-of-5, restart,
 * refusals named (corrupted share, duplicate custodian, share of an earlier
 * init ceremony), unseal, keys and envelope operations, rotation and
 * minimum decryption version, restart and unseal again, audit verification.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { b64u } from "../../src/crypto/bytes.js";
import { Secret } from "../../src/crypto/secret.js";
import { commitShare } from "../../src/crypto/shamir.js";
import { openPrivateKeyFile, parsePrivateKeyFile } from "../../src/custody/custodian-key.js";
import { openShareFile, parseShareFile, sealShareFile } from "../../src/custody/share-format.js";
import { type CliResult, runCli, type ServerProcess, startServer } from "./harness.js";

const CUSTODIANS = ["alice", "bob", "carol", "dave", "erin"];

describe("custody ceremony, keys and audit through the real CLI", () => {
  let dir: string;
  let server: ServerProcess;
  const dataDir = () => join(dir, "data");
  const pass = () => join(dir, "passphrase");
  let env: Record<string, string>;
  const cli = (args: string[], token?: string): Promise<CliResult> =>
    runCli(args, { ...env, ...(token ? { CUSTOS_TOKEN: token } : {}) });
  const ok = async (args: string[], token?: string): Promise<CliResult> => {
    const r = await cli(args, token);
    if (r.code !== 0) throw new Error(`custos ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r;
  };
  const json = async <T>(args: string[], token?: string): Promise<T> =>
    JSON.parse((await ok([...args, "--format", "json"], token)).stdout) as T;
  const unseal = (who: string, shareDir = "shares") =>
    cli([
      "operator",
      "unseal",
      "--share",
      join(dir, shareDir, `${who}.share`),
      "--identity",
      join(dir, `${who}.key`),
      "--passphrase-file",
      pass(),
    ]);
  const restart = async () => {
    await server.stop();
    server = await startServer(["--data-dir", dataDir()]);
    env = { CUSTOS_ADDR: server.url };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "custos-e2e-"));
    writeFileSync(pass(), "correct horse battery staple\n", { mode: 0o600 });
    await Promise.all(
      CUSTODIANS.map((c) => ok(["keygen", "--out", join(dir, c), "--passphrase-file", pass()])),
    );
    // An earlier, separate init ceremony (another node) gives dave a share that must be refused here.
    const other = await startServer(["--data-dir", join(dir, "other")]);
    env = { CUSTOS_ADDR: other.url };
    await ok([
      "operator",
      "init",
      "--shares",
      "3",
      "--threshold",
      "2",
      ...["alice", "bob", "dave"].flatMap((c) => ["--custodian", join(dir, `${c}.pub`)]),
      "--out-dir",
      join(dir, "old-shares"),
      "--root-token-file",
      join(dir, "old.token"),
    ]);
    await other.stop();
    server = await startServer(["--data-dir", dataDir()]);
    env = { CUSTOS_ADDR: server.url };
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("runs init, unseal with named refusals, envelope operations, rotation, restart and audit", async () => {
    const init = await ok([
      "operator",
      "init",
      "--shares",
      "5",
      "--threshold",
      "3",
      ...CUSTODIANS.flatMap((c) => ["--custodian", join(dir, `${c}.pub`)]),
      "--out-dir",
      join(dir, "shares"),
      "--root-token-file",
      join(dir, "root.token"),
    ]);
    expect(init.stderr).toContain("3-of-5");
    const root = readFileSync(join(dir, "root.token"), "utf8").trim();
    for (const c of CUSTODIANS)
      expect(
        parseShareFile(JSON.parse(readFileSync(join(dir, "shares", `${c}.share`), "utf8"))).custodian,
      ).toBe(c);

    // Tokens for separated duties: an administrator, a service, an auditor.
    const admin = (
      await json<{ token: string }>(["token", "create", "--principal", "kim", "--role", "admin"], root)
    ).token;
    const svc = (
      await json<{ token: string }>(
        ["token", "create", "--principal", "ehr-store", "--role", "service"],
        root,
      )
    ).token;
    const auditor = (
      await json<{ token: string }>(["token", "create", "--principal", "audrey", "--role", "auditor"], root)
    ).token;

    await restart();
    let status = await json<{ sealed: boolean; progress: number }>(["status"]);
    expect(status).toMatchObject({ sealed: true, progress: 0 });
    const sealedUse = await cli(["keys", "list"], admin);
    expect(sealedUse.code).toBe(4);
    expect(sealedUse.stderr).toContain("sealed");

    expect((await unseal("alice")).code).toBe(0);
    expect((await unseal("bob")).code).toBe(0);
    status = await json(["status"]);
    expect(status).toMatchObject({ sealed: true, progress: 2 });

    // Carol's share corrupted: re-encrypted to her own key, so it opens, but its bytes are wrong.
    const carolKey = await openPrivateKeyFile(
      parsePrivateKeyFile(JSON.parse(readFileSync(join(dir, "carol.key"), "utf8"))),
      "correct horse battery staple",
    );
    const carolFile = parseShareFile(JSON.parse(readFileSync(join(dir, "shares", "carol.share"), "utf8")));
    const payload = await openShareFile(carolFile, carolKey);
    const bad = new Uint8Array(payload.share.reveal());
    bad[5] = (bad[5] ?? 0) ^ 0x01;
    const carolPub = JSON.parse(readFileSync(join(dir, "carol.pub"), "utf8")) as { publicKey: string };
    const corrupted = await sealShareFile({
      initId: payload.initId,
      index: payload.index,
      holder: "carol",
      threshold: carolFile.threshold,
      shares: carolFile.shares,
      recipientPublicKey: b64u.decode(carolPub.publicKey, "publicKey"),
      share: Secret.of(bad),
      // The file carries a commitment to its own (bad) bytes; the server checks against the one it recorded at init.
      commitment: commitShare(payload.initId, payload.index, "carol", bad),
      nodePublicKey: b64u.decode(carolFile.node, "node"),
    });
    mkdirSync(join(dir, "corrupt"));
    writeFileSync(join(dir, "corrupt", "carol.share"), JSON.stringify(corrupted), { flag: "w" });
    const r1 = await unseal("carol", "corrupt");
    expect(r1.code).toBe(1);
    expect(r1.stderr).toContain("carol");
    expect(r1.stderr).toContain("commitment");

    const r2 = await unseal("alice");
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain("alice");
    expect(r2.stderr).toContain("already submitted");

    const r3 = await unseal("dave", "old-shares");
    expect(r3.code).toBe(1);
    expect(r3.stderr).toContain("dave");
    expect(r3.stderr).toContain("another initialisation");
    expect(r3.stderr).toContain("not sent");

    status = await json(["status"]);
    expect(status).toMatchObject({ sealed: true, progress: 2 });
    const r4 = await unseal("carol");
    expect(r4.code).toBe(0);
    expect(r4.stdout).toContain("unsealed");

    // Keys and envelope operations.
    await ok(["keys", "create", "ehr-notes"], admin);
    const ctx = ["--context", "institution=nyu", "--context", "patient=MRN-0012345"];
    const dk = await json<{ ciphertext: string; plaintext: string; keyVersion: number }>(
      ["datakey", "ehr-notes", ...ctx, "--purpose", "TREAT"],
      svc,
    );
    expect(dk.keyVersion).toBe(1);
    expect(Buffer.from(dk.plaintext, "base64")).toHaveLength(32);
    const dec = await json<{ plaintext: string }>(
      ["decrypt", "ehr-notes", ...ctx, "--purpose", "TREAT", "--ciphertext", dk.ciphertext],
      svc,
    );
    expect(dec.plaintext).toBe(dk.plaintext);
    const wrongCtx = await cli(
      [
        "decrypt",
        "ehr-notes",
        "--context",
        "institution=msk",
        "--context",
        "patient=MRN-0012345",
        "--purpose",
        "TREAT",
        "--ciphertext",
        dk.ciphertext,
      ],
      svc,
    );
    expect(wrongCtx.code).toBe(1);
    expect(wrongCtx.stderr).toContain("decryption_failed");
    const svcAdmin = await cli(["keys", "rotate", "ehr-notes"], svc);
    expect(svcAdmin.code).toBe(1);
    expect(svcAdmin.stderr).toContain("forbidden");

    await ok(["keys", "rotate", "ehr-notes"], admin);
    const oldDec = await json<{ plaintext: string; keyVersion: number }>(
      ["decrypt", "ehr-notes", ...ctx, "--purpose", "TREAT", "--ciphertext", dk.ciphertext],
      svc,
    );
    expect(oldDec).toMatchObject({ plaintext: dk.plaintext, keyVersion: 1 });
    const rw = await json<{ ciphertext: string; keyVersion: number }>(
      ["rewrap", "ehr-notes", ...ctx, "--purpose", "TREAT", "--ciphertext", dk.ciphertext],
      svc,
    );
    expect(rw.keyVersion).toBe(2);
    expect(rw).not.toHaveProperty("plaintext");

    await ok(["keys", "update", "ehr-notes", "--min-decryption-version", "2"], admin);
    const retired = await cli(
      ["decrypt", "ehr-notes", ...ctx, "--purpose", "TREAT", "--ciphertext", dk.ciphertext],
      svc,
    );
    expect(retired.code).toBe(1);
    expect(retired.stderr).toContain("decryption_failed");

    // Restart: sealed again; three custodians unseal; the v2 blob still decrypts.
    await restart();
    for (const c of ["erin", "dave", "bob"]) expect((await unseal(c)).code).toBe(0);
    const again = await json<{ plaintext: string; keyVersion: number }>(
      ["decrypt", "ehr-notes", ...ctx, "--purpose", "TREAT", "--ciphertext", rw.ciphertext],
      svc,
    );
    expect(again).toMatchObject({ plaintext: dk.plaintext, keyVersion: 2 });

    const verify = await json<{
      ok: boolean;
      signedHead: { ok: boolean; size?: number } | null;
      events: number;
      custodiansWhoUnsealed: string[];
      unseals: { reason: string }[];
    }>(["audit", "verify"], auditor);
    expect(verify.ok).toBe(true);
    expect(verify.signedHead).toMatchObject({ ok: true });
    expect(verify.custodiansWhoUnsealed.sort()).toEqual(["alice", "bob", "carol", "dave", "erin"]);
    expect(verify.unseals.map((u) => u.reason)).toEqual([
      "unsealed by custodians alice, bob, carol",
      "unsealed by custodians erin, dave, bob",
    ]);
    const events = await json<{ operation: string; decision: string; custodian?: string; reason?: string }[]>(
      ["audit", "events"],
      auditor,
    );
    const refusals = events.filter((e) => e.operation === "sys.unseal.submit" && e.decision === "deny");
    // Dave's share of the other node never left his machine: the CLI compares init ids first.
    expect(refusals.map((e) => [e.custodian, e.reason])).toEqual([
      ["carol", "commitment_mismatch"],
      ["alice", "duplicate_custodian"],
    ]);
    const denied = events.find((e) => e.operation === "keys.decrypt" && e.decision === "deny");
    expect(denied?.reason).toBe("authentication_failed");
  }, 240_000);
});
