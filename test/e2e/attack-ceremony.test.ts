/**
 * Issue 10, finding 1, performed as the review performed it, with real
 * processes: a custos server initialised 2-of-3 (alice, bob, carol); an
 * operator who may start a rekey starts one to a tree of two keys they hold
 * (mallory, trudy) and runs an impostor at the address the custodians use
 * (a node:http proxy here) that serves, as `seal-status`, a sealed node
 * whose unseal ceremony is the rekey's (its nonce, key and signature), and
 * forwards every unseal submission to `/v1/sys/rekey/submit` on the real
 * node. The custodians run their routine `custos operator unseal`; the
 * attacker then confirms the new shares with their own keys. Before ceremony
 * kinds the node switched custody to the attacker; now the CLI refuses to
 * send (the signature is a rekey's, not an unseal's), the node refuses an
 * unseal-kind share on the rekey route by name on its own, and custody stays.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { b64u, hex } from "../../src/crypto/bytes.js";
import {
  generateCustodianKey,
  openPrivateKeyFile,
  parsePrivateKeyFile,
} from "../../src/custody/custodian-key.js";
import { makeUnsealSubmission } from "../../src/custody/flat-submission.js";
import { openShareFile, parseShareFile } from "../../src/custody/share-format.js";
import { type CliResult, runCli, type ServerProcess, startServer } from "./harness.js";

const PASS = "correct horse battery staple";
type Json = Record<string, unknown>;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => {
      body += d;
    });
    req.on("end", () => resolve(body));
    req.on("error", reject);
  });
}

describe("finding 1: unseal and rekey ceremonies are interchangeable", () => {
  let dir: string;
  let server: ServerProcess;
  let proxy: Server;
  let proxyUrl: string;
  let root: string;
  /** What the impostor forwarded to the real rekey route, and what the node answered. */
  const forwarded: { status: number; body: string }[] = [];
  const node = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${server.url}${path}`, init);
    return { status: res.status, body: (await res.json()) as Json };
  };
  const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
    runCli(args, { CUSTOS_ADDR: server.url, ...env });
  const ok = async (args: string[], env: Record<string, string> = {}): Promise<CliResult> => {
    const r = await cli(args, env);
    if (r.code !== 0) throw new Error(`custos ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r;
  };
  const asHolder = (who: string, shareDir: string) => [
    "--share",
    join(dir, shareDir, `${who}.share`),
    "--identity",
    join(dir, `${who}.key`),
    "--passphrase-file",
    join(dir, "pass"),
  ];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "custos-attack-ceremony-"));
    writeFileSync(join(dir, "pass"), `${PASS}\n`, { mode: 0o600 });
    server = await startServer(["--data-dir", join(dir, "data")]);
    for (const who of ["alice", "bob", "carol", "mallory", "trudy"]) {
      const { publicFile, privateFile } = await generateCustodianKey(who, PASS, { scryptN: 2 ** 15 });
      writeFileSync(join(dir, `${who}.pub`), JSON.stringify(publicFile));
      writeFileSync(join(dir, `${who}.key`), JSON.stringify(privateFile), { mode: 0o600 });
    }
    await ok([
      "operator",
      "init",
      "--shares",
      "3",
      "--threshold",
      "2",
      ...["alice", "bob", "carol"].flatMap((c) => ["--custodian", join(dir, `${c}.pub`)]),
      "--out-dir",
      join(dir, "shares"),
      "--root-token-file",
      join(dir, "root.token"),
    ]);
    root = readFileSync(join(dir, "root.token"), "utf8").trim();

    // The impostor at the custodians' CUSTOS_ADDR.
    proxy = createServer((req, res) => {
      const answer = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      void (async () => {
        const seal = (await node("/v1/sys/seal-status")).body;
        const change = (await node("/v1/sys/rekey")).body;
        const fake = {
          ...seal,
          sealed: true,
          progress: 0,
          submitted: [],
          nonce: change.nonce,
          ceremonyPublicKey: change.ceremonyPublicKey,
          ceremonySignature: change.ceremonySignature,
          ceremonyExpiresAt: null,
        };
        if (req.method === "GET" && req.url === "/v1/sys/seal-status") return answer(200, fake);
        if (req.method === "POST" && req.url === "/v1/sys/unseal") {
          const body = await readBody(req);
          const r = await fetch(`${server.url}/v1/sys/rekey/submit`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body,
          });
          const text = await r.text();
          forwarded.push({ status: r.status, body: text });
          return r.ok
            ? answer(200, { ...fake, progress: forwarded.length })
            : answer(r.status, JSON.parse(text));
        }
        return answer(404, { error: { code: "not_found", message: "not found" } });
      })().catch((err: unknown) => answer(502, { error: { code: "proxy", message: String(err) } }));
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  }, 240_000);

  afterAll(async () => {
    await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("custodians' routine unseal, relayed by an impostor into a rekey to the attacker's keys, does not switch custody", async () => {
    const before = (await node("/v1/sys/seal-status")).body;
    writeFileSync(
      join(dir, "evil.yaml"),
      "threshold: 2\nof:\n  - custodian: mallory\n  - custodian: trudy\n",
    );
    await ok(["operator", "rekey", "start", "--tree", join(dir, "evil.yaml")], { CUSTOS_TOKEN: root });

    // Alice and Bob unseal "as usual", at the impostor's address.
    const unseals: CliResult[] = [];
    for (const who of ["alice", "bob"]) {
      unseals.push(await cli(["operator", "unseal", ...asHolder(who, "shares")], { CUSTOS_ADDR: proxyUrl }));
    }
    // If the quorum was met, the attacker confirms the new shares with their own keys.
    const change = (await node("/v1/sys/rekey")).body;
    if (change.phase === "confirming") {
      await ok(["operator", "rekey", "status", "--out-dir", join(dir, "evil")]);
      for (const who of ["mallory", "trudy"])
        await cli(["operator", "rekey", "confirm", ...asHolder(who, "evil")]);
    }

    const after = (await node("/v1/sys/seal-status")).body;
    expect(after.initId).toBe(before.initId); // custody did not switch
    expect(after.rootGeneration).toBe(before.rootGeneration);
    expect(forwarded.filter((f) => f.status === 200)).toEqual([]); // nothing counted toward the rekey
    const still = (await node("/v1/sys/rekey")).body;
    expect(still).toMatchObject({ active: true, phase: "quorum", submitted: [] });
    // The custodians' CLI refused before sending: the ceremony is signed as a rekey's, not an unseal's.
    for (const r of unseals) {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /did not prove it is the node .* as an unseal ceremony's.*the share was not sent/s,
      );
    }
    expect(forwarded).toEqual([]);
  }, 300_000);

  it("the node refuses on its own: an unseal-kind share sent straight to the rekey route is a named 4xx", async () => {
    const change = (await node("/v1/sys/rekey")).body;
    expect(change).toMatchObject({ active: true, kind: "rekey", ceremonyKind: "rekey", phase: "quorum" });
    // What a CLI that did not check would have sent: alice's real share, sealed as an unseal to the rekey's key.
    const key = await openPrivateKeyFile(
      parsePrivateKeyFile(JSON.parse(readFileSync(join(dir, "alice.key"), "utf8"))),
      PASS,
    );
    const payload = await openShareFile(
      parseShareFile(JSON.parse(readFileSync(join(dir, "shares", "alice.share"), "utf8"))),
      key,
    );
    key.dispose();
    const nonce = hex.decode(String(change.nonce), "nonce");
    const ceremonyKey = b64u.decode(String(change.ceremonyPublicKey), "key");
    const asUnseal = await makeUnsealSubmission(payload, "unseal", nonce, ceremonyKey);
    const asConfirm = await makeUnsealSubmission(payload, "rekey-confirm", nonce, ceremonyKey);
    payload.share.dispose();
    const post = (path: string, body: unknown) =>
      node(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });

    const unseal = await post("/v1/sys/rekey/submit", asUnseal);
    expect(unseal.status).toBe(409);
    expect(unseal.body.error).toMatchObject({
      code: "share_refused",
      reason: "wrong_kind",
      custodian: "alice",
    });
    expect(String((unseal.body.error as Json).message)).toMatch(
      /this share was sealed for an unseal ceremony, not a rekey/,
    );
    const confirm = await post("/v1/sys/rekey/submit", asConfirm);
    expect(confirm.status).toBe(409);
    expect(String((confirm.body.error as Json).message)).toMatch(/sealed for a rekey's confirmation/);
    // Relabelled as a rekey's, it does not open: the kind is bound into the HPKE info.
    const relabelled = await post("/v1/sys/rekey/submit", { ...asUnseal, ceremony: "rekey" });
    expect(relabelled.status).toBe(400);
    expect(relabelled.body.error).toMatchObject({ reason: "undecryptable" });
    // A submission from before ceremony kinds is refused by name.
    const { ceremony: _, ...rest } = asUnseal;
    const legacy = await post("/v1/sys/rekey/submit", { ...rest, format: "custos-unseal/v1" });
    expect(legacy.status).toBe(400);
    expect(legacy.body.error).toMatchObject({ code: "unsupported_format" });
    expect(String((legacy.body.error as Json).message)).toMatch(
      /custos-unseal\/v1 submissions are no longer accepted/,
    );
    expect((await node("/v1/sys/rekey")).body.submitted).toEqual([]);

    // The honest path shows the custodian who would hold the root key before anything is sent.
    const unasked = await cli(["operator", "rekey", "submit", ...asHolder("alice", "shares")]);
    expect(unasked.code).toBe(2);
    expect(unasked.stderr).toMatch(/pass --yes/);
    const wrong = await cli([
      "operator",
      "rekey",
      "submit",
      ...asHolder("alice", "shares"),
      "--digest",
      "00".repeat(32),
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/custodian mallory, key sha256:/);
    expect(wrong.stderr).toContain(`Tree digest: ${String(change.treeDigest)}`);
    expect((await node("/v1/sys/rekey")).body.submitted).toEqual([]);
    await ok(["operator", "rekey", "cancel"], { CUSTOS_TOKEN: root });
  }, 300_000);
});
