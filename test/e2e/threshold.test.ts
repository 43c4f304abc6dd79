/**
 * Threshold keys end to end: a real `custos server --dev` and five real
 * `custos share-node` processes on loopback. 3-of-5 unwrap; two share nodes
 * killed; three killed (the error names them); a share node giving wrong
 * partials (its test-only fault flag) is named and the unwrap still succeeds;
 * after a refresh an old share file cannot contribute; trust sets
 * {2-of-3 a, 2-of-3 b} refuse a quorum of a alone.
 */
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { b64u } from "../../src/crypto/bytes.js";
import { freePort, type ServerProcess, startCustos, startServer } from "./harness.js";

const TOKEN = "threshold-e2e-root-token";
const NAMES = ["s1", "s2", "s3", "s4", "s5"];
const dir = mkdtempSync(join(tmpdir(), "custos-threshold-e2e-"));
const ports = new Map<string, number>();
const nodes = new Map<string, ServerProcess>();
let server: ServerProcess;
let nodeKey = "";

async function startShareNode(name: string, extra: string[] = []): Promise<void> {
  nodes.set(
    name,
    await startCustos([
      "share-node",
      "--listen",
      `127.0.0.1:${ports.get(name)}`,
      "--data-dir",
      join(dir, name),
      "--allow-node",
      nodeKey,
      ...extra,
    ]),
  );
}

async function kill(...names: string[]): Promise<void> {
  await Promise.all(
    names.map(
      (n) =>
        new Promise<void>((resolve) => {
          const child = nodes.get(n)!.child;
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.kill("SIGKILL");
        }),
    ),
  );
}

// biome-ignore lint/suspicious/noExplicitAny: the test reads JSON answers loosely and asserts on them
type Json = any;

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

const context = { patient: "MRN-1", institution: "nyu" };
const plaintext = Buffer.from("threshold-protected record key").toString("base64");
const encrypt = (key: string) =>
  api("POST", `/v1/keys/${key}/encrypt`, { purpose: "TREAT", context, plaintext });
const decrypt = (key: string, ciphertext: string) =>
  api("POST", `/v1/keys/${key}/decrypt`, { purpose: "TREAT", context, ciphertext });

beforeAll(async () => {
  for (const n of NAMES) ports.set(n, await freePort());
  const dataDir = join(dir, "custos");
  server = await startServer([
    "--dev",
    "--no-tpm",
    "--data-dir",
    dataDir,
    "--dev-root-token",
    TOKEN,
    ...NAMES.flatMap((n) => ["--share-node", `${n}=http://127.0.0.1:${ports.get(n)}`]),
  ]);
  const identity = JSON.parse(readFileSync(join(dataDir, "node-identity.key"), "utf8")) as {
    secretKey: string;
  };
  nodeKey = b64u.encode(ed25519.getPublicKey(b64u.decode(identity.secretKey, "secretKey")));
  await Promise.all(NAMES.map((n) => startShareNode(n)));
}, 120_000);

afterAll(async () => {
  // Nodes killed by a signal have no exit code; the harness's stop() would wait for them forever.
  const alive = [...nodes.values()].filter((n) => n.child.exitCode === null && n.child.signalCode === null);
  await Promise.all(alive.map((n) => n.stop()));
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("threshold keys with five share-node processes", () => {
  let ciphertext = "";

  it("3-of-5: wraps without share nodes, unwraps with three; shares are 0600, partials audited", async () => {
    const created = await api("POST", "/v1/keys", { name: "t3", protection: "threshold", threshold: 3 });
    expect(created.status).toBe(201);
    expect(created.json.protection).toBe("threshold");
    const enc = await encrypt("t3");
    expect(enc.status).toBe(200);
    ciphertext = enc.json.ciphertext;
    expect(ciphertext.startsWith("custos:v2:")).toBe(true);
    const dec = await decrypt("t3", ciphertext);
    expect(dec.status).toBe(200);
    expect(dec.json.plaintext).toBe(plaintext);
    for (const n of NAMES) {
      const files = readdirSync(join(dir, n, "threshold"));
      expect(files).toHaveLength(1);
      expect(statSync(join(dir, n, "threshold", files[0]!)).mode & 0o777).toBe(0o600);
    }
    const audited = NAMES.flatMap((n) =>
      readFileSync(join(dir, n, "threshold-audit.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { op: string; node: string }),
    ).filter((e) => e.op === "partial");
    expect(audited).toHaveLength(3);
    expect(audited.every((e) => e.node === nodeKey)).toBe(true);
    // A wrong context is the usual opaque decryption failure.
    const wrong = await api("POST", "/v1/keys/t3/decrypt", {
      purpose: "TREAT",
      context: { patient: "MRN-2" },
      ciphertext,
    });
    expect(wrong.status).toBe(400);
    expect(wrong.json.error.code).toBe("decryption_failed");
  }, 60_000);

  it("unwraps with two share nodes killed", async () => {
    await kill("s1", "s2");
    const dec = await decrypt("t3", ciphertext);
    expect(dec.status).toBe(200);
    expect(dec.json.plaintext).toBe(plaintext);
  }, 60_000);

  it("fails clearly with three killed, naming the unreachable share nodes", async () => {
    await kill("s3");
    const dec = await decrypt("t3", ciphertext);
    expect(dec.status).toBe(503);
    expect(dec.json.error.code).toBe("threshold_unavailable");
    expect([...dec.json.error.unreachable].sort()).toEqual(["s1", "s2", "s3"]);
    expect(dec.json.error.message).toMatch(/s1/);
    await Promise.all(["s1", "s2", "s3"].map((n) => startShareNode(n)));
  }, 60_000);

  it("names a share node whose partial fails its proof, and still unwraps from honest ones", async () => {
    // s4 and s5 have never failed, so they are asked first.
    await kill("s4");
    await startShareNode("s4", ["--insecure-test-wrong-partials"]);
    const dec = await decrypt("t3", ciphertext);
    expect(dec.status).toBe(200);
    expect(dec.json.plaintext).toBe(plaintext);
    expect(server.output()).toMatch(
      /partials that failed their proofs[^\n]*s4|s4[^\n]*partials that failed their proofs/,
    );
    await kill("s4");
    await startShareNode("s4");
  }, 60_000);

  it("after refresh-shares the public key is the same and an old share cannot contribute", async () => {
    const shareDir = join(dir, "s5", "threshold");
    const [file] = readdirSync(shareDir);
    const old = join(dir, "s5-old-share.json");
    copyFileSync(join(shareDir, file!), old);
    const refreshed = await api("POST", "/v1/keys/t3/refresh-shares");
    expect(refreshed.status).toBe(200);
    expect(refreshed.json.refreshed).toEqual([1]);
    expect(refreshed.json.notCommitted).toEqual([]);
    expect((await decrypt("t3", ciphertext)).json.plaintext).toBe(plaintext);
    expect(readFileSync(join(shareDir, file!), "utf8")).not.toBe(readFileSync(old, "utf8"));

    // s5 restores its old share and even relabels it with the new epoch: with
    // s1 and s2 down, s5 is needed, and its partial fails the proof.
    const stale = JSON.parse(readFileSync(old, "utf8"));
    const now = JSON.parse(readFileSync(join(shareDir, file!), "utf8"));
    await kill("s5", "s1", "s2");
    writeFileSync(
      join(shareDir, file!),
      JSON.stringify({ ...stale, current: { ...stale.current, epoch: now.current.epoch } }),
      { mode: 0o600 },
    );
    await startShareNode("s5");
    const dec = await decrypt("t3", ciphertext);
    expect(dec.status).toBe(503);
    expect(dec.json.error.badPartials).toEqual(["s5"]);
    expect(dec.json.error.message).toMatch(/partial failed its proof: s5/);
    // Restored as it was (old epoch): refused by the node itself, still named.
    await kill("s5");
    copyFileSync(old, join(shareDir, file!));
    await startShareNode("s5");
    const again = await decrypt("t3", ciphertext);
    expect(again.status).toBe(503);
    expect(again.json.error.badPartials).toEqual(["s5"]);
    await Promise.all(["s1", "s2"].map((n) => startShareNode(n)));
    expect((await decrypt("t3", ciphertext)).status).toBe(200);
  }, 90_000);

  it("trust sets {2-of-3 a, 2-of-3 b}: a quorum of a alone is refused", async () => {
    const created = await api("POST", "/v1/keys", {
      name: "sets",
      protection: "threshold",
      trustSets: [
        { name: "a", threshold: 2, shareNodes: ["s1", "s2", "s3"] },
        { name: "b", threshold: 2, shareNodes: ["s4", "s5", "s1"] },
      ],
    });
    expect(created.status).toBe(201);
    const ct = (await encrypt("sets")).json.ciphertext as string;
    expect((await decrypt("sets", ct)).json.plaintext).toBe(plaintext);
    await kill("s4", "s5");
    const dec = await decrypt("sets", ct);
    expect(dec.status).toBe(503);
    expect(dec.json.error.message).toMatch(/trust set 'b'/);
    expect([...dec.json.error.unreachable].sort()).toEqual(["s4", "s5"]);
    await startShareNode("s4");
    expect((await decrypt("sets", ct)).json.plaintext).toBe(plaintext);
  }, 90_000);
});
