/**
 * A node on a real swtpm, through the real server and CLI: keys at the TPM
 * level serve datakey and decrypt; swtpm is killed and restarted under load
 * (the service answers 503 during the outage, never 500, and serves again
 * after with nothing lost, because the TPM seal re-opens the root key); a
 * restart comes up unsealed; after a PCR extend it comes up sealed and says
 * which PCR changed, and custodians unseal it as before.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "../../src/crypto/bytes.js";
import { TpmClient } from "../../src/tpm/client.js";
import { pcrExtend } from "../../src/tpm/commands/pcr-extend.js";
import { SwtpmTransport } from "../../src/tpm/transport.js";
import { type Swtpm, skipSwtpm, startSwtpm } from "../helpers/swtpm.js";
import { type CliResult, runCli, type ServerProcess, startServer } from "./harness.js";

const CONTEXT = { institution: "nyu", patient: "MRN-0042" };

describe.skipIf(skipSwtpm)("a node with a TPM (swtpm), end to end", () => {
  let dir: string;
  let swtpm: Swtpm;
  let server: ServerProcess;
  let root: string;
  const data = () => join(dir, "data");
  const pass = () => join(dir, "passphrase");
  const start = async () => {
    server = await startServer(["--data-dir", data(), "--tpm", swtpm.address]);
  };
  const cli = async (args: string[]): Promise<CliResult> => {
    const r = await runCli(args, { CUSTOS_ADDR: server.url, CUSTOS_TOKEN: root });
    if (r.code !== 0) throw new Error(`custos ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r;
  };
  const unseal = async () => {
    for (const who of ["alice", "bob"]) {
      await cli([
        "operator",
        "unseal",
        "--share",
        join(dir, "shares", `${who}.share`),
        "--identity",
        join(dir, `${who}.key`),
        "--passphrase-file",
        pass(),
      ]);
    }
  };
  const api = async (
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${root}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  const datakey = () => api("POST", "/v1/keys/nyu-notes/datakey", { purpose: "TREAT", context: CONTEXT });
  const decrypt = (ciphertext: string) =>
    api("POST", "/v1/keys/nyu-notes/decrypt", { purpose: "TREAT", context: CONTEXT, ciphertext });
  const status = async () => (await api("GET", "/v1/sys/seal-status")).json;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "custos-e2e-tpm-"));
    swtpm = await startSwtpm(join(dir, "swtpm"));
    writeFileSync(pass(), "correct horse battery staple\n", { mode: 0o600 });
    for (const who of ["alice", "bob"]) {
      const r = await runCli(["keygen", "--out", join(dir, who), "--passphrase-file", pass()]);
      if (r.code !== 0) throw new Error(r.stderr);
    }
    await start();
    const init = await runCli(
      [
        "operator",
        "init",
        "--shares",
        "2",
        "--threshold",
        "2",
        "--custodian",
        join(dir, "alice.pub"),
        "--custodian",
        join(dir, "bob.pub"),
        "--out-dir",
        join(dir, "shares"),
        "--root-token-file",
        join(dir, "root.token"),
      ],
      { CUSTOS_ADDR: server.url },
    );
    if (init.code !== 0) throw new Error(init.stderr);
    root = readFileSync(join(dir, "root.token"), "utf8").trim();
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await swtpm?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("holds the root key and new keys in the TPM; the TPM seal takes effect at the next unseal", async () => {
    expect(await status()).toMatchObject({ sealed: false, protection: "tpm", tpmSeal: { state: "off" } });
    const enabled = await cli(["operator", "tpm-seal", "enable", "--pcrs", "7"]);
    expect(enabled.stdout).toMatch(/pending[\s\S]*next unseal/);
    await cli(["operator", "seal"]);
    await unseal();
    const active = JSON.parse((await cli(["operator", "tpm-seal", "status", "--format", "json"])).stdout);
    expect(active).toMatchObject({ state: "active", pcrs: [7], changedPcrs: [] });
    const created = await cli(["keys", "create", "nyu-notes"]);
    expect(created.stdout).toContain("Protection:             tpm");
  }, 120_000);

  it("survives swtpm killed and restarted under load: 503 during the outage, never 500, and nothing lost", async () => {
    const blobs: { ciphertext: string; plaintext: string }[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await datakey();
      expect(r.status).toBe(200);
      blobs.push({ ciphertext: r.json.ciphertext as string, plaintext: r.json.plaintext as string });
    }
    const statuses: number[] = [];
    const codes = new Set<string>();
    let running = true;
    const worker = async () => {
      while (running) {
        const b = blobs[Math.floor(Math.random() * blobs.length)] as (typeof blobs)[number];
        const r = Math.random() < 0.5 ? await decrypt(b.ciphertext) : await datakey();
        statuses.push(r.status);
        if (r.status === 200 && r.json.ciphertext && r.json.plaintext) {
          blobs.push({ ciphertext: r.json.ciphertext as string, plaintext: r.json.plaintext as string });
        } else if (r.status === 200) {
          expect(r.json.plaintext).toBe(b.plaintext);
        } else {
          codes.add((r.json.error as { code: string }).code);
        }
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    await new Promise((r) => setTimeout(r, 500));
    await swtpm.stop();
    await new Promise((r) => setTimeout(r, 1500));
    await swtpm.restart();
    // Serves again by itself: the TPM reset is noticed, the node seals, and the TPM seal re-opens it.
    const deadline = Date.now() + 20_000;
    let recovered = false;
    while (Date.now() < deadline && !recovered) {
      recovered = (await decrypt((blobs[0] as (typeof blobs)[number]).ciphertext)).status === 200;
      if (!recovered) await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 500));
    running = false;
    await Promise.all(workers);
    expect(recovered).toBe(true);
    expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
    expect([...codes].every((c) => ["tpm_unavailable", "tpm_reset", "sealed"].includes(c))).toBe(true);
    // Every data key handed out, before, during and after the outage, still opens.
    for (const b of blobs) {
      const r = await decrypt(b.ciphertext);
      expect(r.status).toBe(200);
      expect(r.json.plaintext).toBe(b.plaintext);
    }
    const verify = await cli(["audit", "verify"]);
    expect(verify.stdout).toMatch(/verified|ok/i);
    expect(server.output()).not.toMatch(/"level":60|internal error/);
  }, 120_000);

  it("restarts unsealed through the TPM seal", async () => {
    const before = await datakey();
    await server.stop();
    await start();
    expect(await status()).toMatchObject({ sealed: false, tpmSeal: { state: "active", lastError: null } });
    expect((await decrypt(before.json.ciphertext as string)).json.plaintext).toBe(before.json.plaintext);
  }, 120_000);

  it("after a PCR extend comes up sealed, says which PCR changed, and custodians unseal it", async () => {
    const before = await datakey();
    await server.stop();
    const tpm = new TpmClient(new SwtpmTransport({ host: "127.0.0.1", port: swtpm.port }));
    await tpm.exclusive((x) => pcrExtend(x, 7, randomBytes(32)));
    await tpm.close();
    await start();
    const s = await status();
    expect(s.sealed).toBe(true);
    expect((s.tpmSeal as { lastError: string }).lastError).toMatch(/PCR 7 changed.*custodians must unseal/);
    expect(server.output()).toMatch(/starting sealed: .*PCR 7 changed/);
    const sealedStatus = await cli(["status"]);
    expect(sealedStatus.stdout).toMatch(/PCR 7 changed/);
    await unseal();
    expect((await decrypt(before.json.ciphertext as string)).json.plaintext).toBe(before.json.plaintext);
    // Re-sealed to the new measured state at that unseal.
    expect(
      JSON.parse((await cli(["operator", "tpm-seal", "status", "--format", "json"])).stdout),
    ).toMatchObject({
      state: "active",
      changedPcrs: [],
      lastError: null,
    });
  }, 120_000);
});
