/**
 * Finding 2 of issue 10, performed as it was: a pass-through recorder sits on
 * the links between a real `custos server` and its real `custos share-node`
 * processes (plain HTTP on loopback, the one place the custos node still
 * allows it), records every request and answer, and then does what the
 * attacker did with nothing but that recording and the stored ciphertext:
 * sum the dealers' C_0 into the public key X, Lagrange-combine two recorded
 * partials into S, derive wk = H("custos/threshold-wrap/v1" ‖ X ‖ R ‖ S) as
 * threshold/ecies.ts does, and run AES-CTR over the GCM body (no tag check,
 * so no context needed). Before the fix that gave the exact data key; with
 * blinding it gives noise. Then the transport half: share nodes over mutual
 * TLS unwrap, a client without a certificate is refused, and a plain http://
 * share node off loopback stops the custos node from starting unless the
 * operator passes --insecure-share-node-http.
 */
import { execFileSync } from "node:child_process";
import { createDecipheriv, createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import { request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { b64u } from "../../src/crypto/bytes.js";
import { parseThresholdHeader, thresholdBlobFromText } from "../../src/threshold/ecies.js";
import {
  lagrangeAtZero,
  type Point,
  pointFromBytes,
  pointToBytes,
  sumProducts,
} from "../../src/threshold/group.js";
import { freePort, runCli, type ServerProcess, startCustos, startServer } from "./harness.js";

const TOKEN = "attack-threshold-e2e-root-token";
const context = { patient: "MRN-7", institution: "nyu" };

// biome-ignore lint/suspicious/noExplicitAny: the test reads JSON answers loosely and asserts on them
type Json = any;

function api(
  server: ServerProcess,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Json }> {
  return fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  }).then(async (res) => ({ status: res.status, json: await res.json() }));
}

/** The custos node's identity key from its data directory, for --allow-node. */
function nodeKeyOf(dataDir: string): string {
  const identity = JSON.parse(readFileSync(join(dataDir, "node-identity.key"), "utf8")) as {
    secretKey: string;
  };
  return b64u.encode(ed25519.getPublicKey(b64u.decode(identity.secretKey, "secretKey")));
}

/** A running process, stopped whether it exited, was killed or is still up. */
const stopAll = (procs: (ServerProcess | undefined)[]) => Promise.all(procs.map((p) => p?.stop()));

interface Recorded {
  path: string;
  request: string;
  status: number;
  answer: string;
}

/** A pass-through HTTP proxy in front of `port` that keeps every exchange. */
async function recorder(port: () => number, log: Recorded[]): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const request = Buffer.concat(chunks);
      const out = httpRequest(
        { host: "127.0.0.1", port: port(), method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          const back: Buffer[] = [];
          answer.on("data", (c: Buffer) => back.push(c));
          answer.on("end", () => {
            const body = Buffer.concat(back);
            log.push({
              path: req.url ?? "",
              request: request.toString("utf8"),
              status: answer.statusCode ?? 0,
              answer: body.toString("utf8"),
            });
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            res.end(body);
          });
        },
      );
      out.on("error", () => {
        res.writeHead(502);
        res.end();
      });
      out.end(request);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

describe("finding 2: a passive recorder on the share-node links cannot recover a data key", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-attack-threshold-"));
  const names = ["a", "b"];
  const log: Recorded[] = [];
  const sharePorts = new Map<string, number>();
  const proxies: Server[] = [];
  const shareNodes: ServerProcess[] = [];
  let server: ServerProcess;

  beforeAll(async () => {
    const proxyPorts = new Map<string, number>();
    for (const n of names) {
      sharePorts.set(n, await freePort());
      const p = await recorder(() => sharePorts.get(n)!, log);
      proxies.push(p.server);
      proxyPorts.set(n, p.port);
    }
    const dataDir = join(dir, "custos");
    server = await startServer([
      "--dev",
      "--no-tpm",
      "--data-dir",
      dataDir,
      "--dev-root-token",
      TOKEN,
      ...names.flatMap((n) => ["--share-node", `${n}=http://127.0.0.1:${proxyPorts.get(n)}`]),
    ]);
    const nodeKey = nodeKeyOf(dataDir);
    for (const n of names) {
      shareNodes.push(
        await startCustos([
          "share-node",
          "--listen",
          `127.0.0.1:${sharePorts.get(n)}`,
          "--data-dir",
          join(dir, n),
          "--allow-node",
          nodeKey,
        ]),
      );
    }
  }, 120_000);

  afterAll(async () => {
    await stopAll([...shareNodes, server]);
    for (const p of proxies) p.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("finding 2: Lagrange-combining two recorded partials with the stored ciphertext does not give the data key", async () => {
    expect(
      (await api(server, "POST", "/v1/keys", { name: "rec", protection: "threshold", threshold: 2 })).status,
    ).toBe(201);
    const made = await api(server, "POST", "/v1/keys/rec/datakey", { purpose: "TREAT", context });
    expect(made.status).toBe(200);
    const dataKey = Buffer.from(made.json.plaintext as string, "base64");
    const stored = made.json.ciphertext as string;
    const opened = await api(server, "POST", "/v1/keys/rec/decrypt", {
      purpose: "TREAT",
      context,
      ciphertext: stored,
    });
    expect(opened.status).toBe(200);
    expect(opened.json.plaintext).toBe(made.json.plaintext);

    // The attacker's view: the recording and the stored ciphertext, no token, no context.
    const deals = log.filter((e) => e.path === "/v1/threshold/dkg/deal" && e.status === 200);
    expect(deals).toHaveLength(2);
    const x = deals
      .map((d) => pointFromBytes(b64u.decode(JSON.parse(d.answer).commitments[0], "C0"), "C0"))
      .reduce((p: Point, q: Point) => p.add(q));
    const partials = log.filter((e) => e.path === "/v1/threshold/partial" && e.status === 200);
    expect(partials).toHaveLength(2);
    const answers = partials.map((p) => JSON.parse(p.answer) as { index: number; partial: string });
    const indices = answers.map((a) => a.index);
    const s = sumProducts(
      answers.map((a) => pointFromBytes(b64u.decode(a.partial, "partial"), "partial")),
      indices.map((i) => lagrangeAtZero(i, indices)),
    );
    const blob = thresholdBlobFromText(stored);
    const header = parseThresholdHeader(blob);
    const wk = createHash("sha256")
      .update("custos/threshold-wrap/v1")
      .update(pointToBytes(x))
      .update(pointToBytes(header.ephemeral))
      .update(pointToBytes(s))
      .digest();
    // GCM with the all-zero IV encrypts with CTR from counter block 0^96 ‖ 00000002.
    const ctr = createDecipheriv("aes-256-ctr", wk, Buffer.from(`${"00".repeat(12)}00000002`, "hex"));
    const body = blob.subarray(header.headerLength, blob.length - 16);
    const recovered = Buffer.concat([ctr.update(body), ctr.final()]);
    expect(recovered.length).toBe(dataKey.length);
    expect(recovered.equals(dataKey)).toBe(false);

    // What the share nodes were shown (and what their audit files name) is R' = ρ·R, never R.
    const r = b64u.encode(pointToBytes(header.ephemeral));
    const requests = partials.map((p) => JSON.parse(p.request) as { format: string; point: string });
    for (const q of requests) {
      expect(q.format).toBe("custos-partial-request/v2");
      expect(q.point).not.toBe(r);
    }
    expect(log.some((e) => e.request.includes(r) || e.answer.includes(r))).toBe(false);
    const audited = names.flatMap((n) =>
      readFileSync(join(dir, n, "threshold-audit.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { op: string; point?: string })
        .filter((e) => e.op === "partial"),
    );
    expect(audited.map((e) => e.point).sort()).toEqual(requests.map((q) => q.point).sort());
    // A second unwrap of the same ciphertext is blinded afresh: nothing links the two.
    expect(
      (await api(server, "POST", "/v1/keys/rec/decrypt", { purpose: "TREAT", context, ciphertext: stored }))
        .status,
    ).toBe(200);
    const again = log
      .filter((e) => e.path === "/v1/threshold/partial")
      .slice(2)
      .map((e) => JSON.parse(e.request).point as string);
    expect(again).toHaveLength(2);
    for (const p of again) expect(requests.map((q) => q.point)).not.toContain(p);
  }, 120_000);
});

describe("finding 2: share nodes over HTTPS with mutual TLS; plain http:// off loopback refused", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-attack-threshold-tls-"));
  const f = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const names = ["t1", "t2"];
  const shareNodes: ServerProcess[] = [];
  let server: ServerProcess;
  let firstUrl = "";

  const makeCert = (name: string, ext: string) => {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
    writeFileSync(f(`${name}.ext`), ext);
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    );
  };

  beforeAll(async () => {
    openssl(
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=share-node-test-ca",
    );
    makeCert("share", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    makeCert("client", "extendedKeyUsage=clientAuth\n");
    const ports = new Map<string, number>();
    for (const n of names) ports.set(n, await freePort());
    const dataDir = f("custos");
    server = await startServer([
      "--dev",
      "--no-tpm",
      "--data-dir",
      dataDir,
      "--dev-root-token",
      TOKEN,
      ...names.flatMap((n) => ["--share-node", `${n}=https://127.0.0.1:${ports.get(n)}`]),
      "--share-node-ca",
      f("ca.pem"),
      "--share-node-client-cert",
      f("client.pem"),
      "--share-node-client-key",
      f("client.key"),
    ]);
    const nodeKey = nodeKeyOf(dataDir);
    for (const n of names) {
      shareNodes.push(
        await startCustos([
          "share-node",
          "--listen",
          `127.0.0.1:${ports.get(n)}`,
          "--data-dir",
          f(n),
          "--allow-node",
          nodeKey,
          "--tls-cert",
          f("share.pem"),
          "--tls-key",
          f("share.key"),
          "--tls-client-ca",
          f("ca.pem"),
        ]),
      );
    }
    firstUrl = shareNodes[0]!.url;
  }, 120_000);

  afterAll(async () => {
    await stopAll([...shareNodes, server]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("finding 2: an unwrap through share nodes that require mutual TLS works", async () => {
    expect(firstUrl.startsWith("https://")).toBe(true);
    expect(
      (await api(server, "POST", "/v1/keys", { name: "tls", protection: "threshold", threshold: 2 })).status,
    ).toBe(201);
    const made = await api(server, "POST", "/v1/keys/tls/datakey", { purpose: "TREAT", context });
    expect(made.status).toBe(200);
    const opened = await api(server, "POST", "/v1/keys/tls/decrypt", {
      purpose: "TREAT",
      context,
      ciphertext: made.json.ciphertext,
    });
    expect(opened.status).toBe(200);
    expect(opened.json.plaintext).toBe(made.json.plaintext);
  }, 120_000);

  it("finding 2: a client without a certificate from the share node's CA is refused; with one it is answered", async () => {
    const info = (cert: boolean) =>
      new Promise<number>((resolve, reject) => {
        const req = httpsRequest(
          `${firstUrl}/v1/threshold/info`,
          {
            ca: readFileSync(f("ca.pem")),
            agent: false,
            ...(cert && { cert: readFileSync(f("client.pem")), key: readFileSync(f("client.key")) }),
          },
          (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        req.on("error", reject);
        req.end();
      });
    await expect(info(false)).rejects.toThrow();
    expect(await info(true)).toBe(200);
    // Plain HTTP to the TLS port gets no answer from the share node either.
    await expect(fetch(`${firstUrl.replace("https:", "http:")}/v1/threshold/info`)).rejects.toThrow();
  }, 60_000);

  it("finding 2: a plain http:// share node (or share-node repository) off loopback stops the start unless --insecure-share-node-http", async () => {
    const far = "far=http://192.0.2.10:8300";
    writeFileSync(
      f("repos.yaml"),
      `repositories:\n  r1: { type: share-node, url: "http://192.0.2.10:8300", token: "${"t".repeat(24)}" }\n`,
    );
    const dev = (d: string) => ["server", "--dev", "--no-tpm", "--listen", "127.0.0.1:0", "--data-dir", f(d)];
    // One after the other: each is a node process, and the machine may be busy.
    const refused = await runCli([...dev("far1"), "--share-node", far]);
    const repos = await runCli([...dev("far2"), "--repositories", f("repos.yaml")]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /--share-node far: .*plain http:\/\/.*not loopback.*--insecure-share-node-http/,
    );
    expect(repos.code).toBe(2);
    expect(repos.stderr).toMatch(/repositories\.r1: .*plain http:\/\/.*--insecure-share-node-http/);
    const allowed = await startServer([
      "--dev",
      "--no-tpm",
      "--data-dir",
      f("far3"),
      "--share-node",
      far,
      "--insecure-share-node-http",
    ]);
    await allowed.stop();
  }, 120_000);
});
