/**
 * The TPM protection level's cost, measured against the TPM itself in the
 * same run (issue "TPM 2.0 in TypeScript", bench/RESULTS.md "TPM benchmark"):
 *
 * 1. raw: TPM2_HMAC round trips to swtpm, one prebuilt command (password
 *    authorization, no sessions, no parameter encryption) written and read
 *    back on one socket — the ceiling no client can beat;
 * 2. client: `TpmKeys.prf` through our client — salted HMAC session, AES-CFB
 *    on the input and the output, response HMAC checked — one at a time;
 * 3. HTTP: `POST /v1/keys/<tpm key>/datakey` and `/decrypt` against the real
 *    `custos server --tpm` on the same swtpm (each costs one TPM2_HMAC),
 *    with autocannon.
 *
 * swtpm serves one connection at a time, so the steps run one after another
 * and each closes its connection before the next. Run:
 *   BENCH_SECONDS=10 npx tsx bench/tpm.ts
 * Appends the results to bench/RESULTS.md (BENCH_NO_WRITE=1 to skip).
 */
import { execFileSync } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Secret } from "../src/crypto/secret.js";
import { eccStorageTemplate, hmacKeyTemplate } from "../src/protect/templates.js";
import { TpmKeys } from "../src/protect/tpm.js";
import { TpmClient } from "../src/tpm/client.js";
import { create } from "../src/tpm/commands/create.js";
import { createPrimary } from "../src/tpm/commands/create-primary.js";
import { flushContext } from "../src/tpm/commands/flush-context.js";
import { load as tpmLoad } from "../src/tpm/commands/load.js";
import { startAuthSession } from "../src/tpm/commands/start-auth-session.js";
import { LIMITS, TPM_ALG, TPM_CC, TPM_RH, TPM_ST } from "../src/tpm/constants.js";
import { TpmWriter } from "../src/tpm/marshal.js";
import { SwtpmTransport } from "../src/tpm/transport.js";
import { load, stopLoad } from "./load.js";
import { call, envInt, ROOT, startCustos, stopAll } from "./servers.js";

const RESULTS_MD = fileURLToPath(new URL("./RESULTS.md", import.meta.url));
const SWTPM = join(ROOT, "hsm-sim", "swtpm.sh");
const SECONDS = envInt("BENCH_SECONDS", 10);
const EMPTY = new Uint8Array(0);
const INPUT = new Uint8Array(78); // the size of a wrap's prf input: label ‖ nonce ‖ aadHash

async function rawHmacPerSecond(port: number, seconds: number): Promise<number> {
  // Set up a key with password authorization through our client, then time bare frames.
  const client = new TpmClient(new SwtpmTransport({ host: "127.0.0.1", port }));
  const pw = { kind: "password" as const, authValue: EMPTY };
  const { primary, key } = await client.exclusive(async (x) => {
    const primary = await createPrimary(x, {
      hierarchy: TPM_RH.NULL,
      auth: pw,
      template: eccStorageTemplate(),
    });
    const session = await startAuthSession(x, primary, "hmac");
    const created = await create(x, {
      parent: primary,
      auth: pw,
      template: hmacKeyTemplate(),
      sensitive: { userAuth: EMPTY, data: new Uint8Array(32).fill(1) },
      encryptWith: session,
    });
    await flushContext(x, session.handle);
    const key = await tpmLoad(x, {
      parent: primary,
      auth: pw,
      private: created.private,
      publicBytes: created.publicBytes,
    });
    return { primary, key };
  });
  await client.close();
  const auth = new TpmWriter().u32(TPM_RH.PW).u16(0).u8(1).u16(0).finish();
  const body = new TpmWriter()
    .u32(key.handle)
    .u32(auth.length)
    .bytes(auth)
    .tpm2b(INPUT, LIMITS.maxBuffer, "buffer")
    .u16(TPM_ALG.SHA256)
    .finish();
  const cmd = new TpmWriter()
    .u16(TPM_ST.SESSIONS)
    .u32(10 + body.length)
    .u32(TPM_CC.HMAC)
    .bytes(body)
    .finish();
  const frame = Buffer.alloc(9 + cmd.length);
  frame.writeUInt32BE(8, 0);
  frame.writeUInt32BE(cmd.length, 5);
  frame.set(cmd, 9);
  const socket = new Socket();
  await new Promise<void>((resolve, reject) =>
    socket.connect(port, "127.0.0.1", resolve).once("error", reject),
  );
  socket.setNoDelay(true);
  let count = 0;
  let pending = Buffer.alloc(0);
  const end = Date.now() + seconds * 1000;
  await new Promise<void>((resolve, reject) => {
    socket.on("data", (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0) + 4) {
        const len = pending.readUInt32BE(0);
        if (pending.readUInt32BE(4 + 6) !== 0) return reject(new Error("raw TPM2_HMAC failed"));
        pending = pending.subarray(4 + len + 4);
        count++;
        if (Date.now() < end) socket.write(frame);
        else return resolve();
      }
    });
    socket.write(frame);
  });
  socket.destroy();
  const cleanup = new TpmClient(new SwtpmTransport({ host: "127.0.0.1", port }));
  await cleanup.exclusive(async (x) => {
    await flushContext(x, key.handle);
    await flushContext(x, primary.handle);
  });
  await cleanup.close();
  return count / seconds;
}

async function clientPrfPerSecond(port: number, seconds: number): Promise<number> {
  const keys = new TpmKeys(new TpmClient(new SwtpmTransport({ host: "127.0.0.1", port })));
  await keys.start();
  const handle = await keys.importKey(Secret.random(32));
  let count = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    await handle.prf(INPUT);
    count++;
  }
  handle.dispose();
  await keys.close();
  return count / seconds;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(os.tmpdir(), "custos-bench-tpm-"));
  const state = join(dir, "swtpm");
  const address = /CUSTOS_TPM=(\S+)/.exec(
    execFileSync(SWTPM, ["start", state], { encoding: "utf8" }),
  )?.[1] as string;
  const port = Number(address.split(":")[2]);
  try {
    const raw = await rawHmacPerSecond(port, SECONDS);
    const client = await clientPrfPerSecond(port, SECONDS);
    const token = "bench-root-token";
    const server = await startCustos({
      rootToken: token,
      dataDir: join(dir, "data"),
      serverFlags: ["--tpm", address],
    });
    await call(server.url, "/v1/keys", {
      token,
      body: { name: "bench-tpm", protection: "tpm" },
      expect: 201,
    });
    const body = { purpose: "TREAT", context: { patient: "p1", institution: "nyu" } };
    const { ciphertext } = await call<{ ciphertext: string }>(server.url, "/v1/keys/bench-tpm/datakey", {
      token,
      body,
    });
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const run = async (title: string, requests: { path: string; body: string }[]) => {
      const opts = { url: server.url, connections: 16, pipelining: 1, timeout: 10, title };
      await load({
        ...opts,
        duration: 2,
        requests: requests.map((r) => ({ method: "POST" as const, headers, ...r })),
      });
      const r = await load({
        ...opts,
        duration: SECONDS,
        requests: requests.map((q) => ({ method: "POST" as const, headers, ...q })),
      });
      if (r.non2xx || r.errors || r.timeouts)
        throw new Error(`${title}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
      return r;
    };
    const datakey = await run("datakey", [
      { path: "/v1/keys/bench-tpm/datakey", body: JSON.stringify(body) },
    ]);
    const decrypt = await run("decrypt", [
      { path: "/v1/keys/bench-tpm/decrypt", body: JSON.stringify({ ...body, ciphertext }) },
    ]);
    await server.stop();
    const rows = [
      ["raw TPM2_HMAC (password auth, no sessions), 1 in flight", raw, null, null],
      ["TpmKeys.prf (salted session, CFB both ways, response HMAC), 1 in flight", client, null, null],
      [
        "HTTP datakey, tpm key, 16 connections",
        datakey.requests.mean,
        datakey.latency.p50,
        datakey.latency.p99,
      ],
      [
        "HTTP decrypt, tpm key, 16 connections",
        decrypt.requests.mean,
        decrypt.latency.p50,
        decrypt.latency.p99,
      ],
    ] as const;
    const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
    const pct = (n: number, of: number) => `${((n / of) * 100).toFixed(0)} %`;
    const table = [
      "| what | ops/s | p50 ms | p99 ms | / raw | / client |",
      "|---|--:|--:|--:|--:|--:|",
      ...rows.map(
        ([what, ops, p50, p99]) =>
          `| ${what} | ${fmt(ops)} | ${p50 ?? ""} | ${p99 ?? ""} | ${pct(ops, raw)} | ${pct(ops, client)} |`,
      ),
    ].join("\n");
    const cpus = os.cpus();
    const md = [
      "",
      `## ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC — TPM benchmark, ${SECONDS} s per run`,
      "",
      `Command: \`BENCH_SECONDS=${SECONDS} npx tsx bench/tpm.ts\``,
      "",
      `- Machine: ${cpus.length} × ${[...new Set(cpus.map((c) => c.model.trim()))].join(", ")}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}; load average before ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
      `- TPM: swtpm ${execFileSync("swtpm", ["--version"], { encoding: "utf8" })
        .split("\n")[0]
        ?.replace(/^TPM emulator version /, "")} on loopback TCP (hsm-sim/swtpm.sh)`,
      "",
      table,
      "",
      "Each HTTP request costs one TPM2_HMAC (the wrap or unwrap's prf). Target: HTTP ≥ 50 % of raw.",
      `Load average after: ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}.`,
      "",
    ].join("\n");
    process.stdout.write(md);
    if (!process.env.BENCH_NO_WRITE) appendFileSync(RESULTS_MD, md);
  } finally {
    stopLoad();
    await stopAll();
    execFileSync(SWTPM, ["stop", state]);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
