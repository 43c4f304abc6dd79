/**
 * Threshold keys through the HTTP API in memory (`app.request()`), with three
 * in-process share nodes: what POST /v1/keys accepts and refuses, a round trip,
 * rotation onto the same share nodes, refresh-shares, and format mix-ups.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CustosNode, openNode } from "../../src/api/server.js";
import { b64u } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";
import { NodeIdentity } from "../../src/custody/node-identity.js";
import { type InProcessNode, startInProcessNode } from "../threshold/helpers.js";

type Body = Record<string, unknown> & { error?: { code: string; message: string } };

async function initialised(node: CustosNode): Promise<string> {
  const custodians = ["a1", "b2"].map((id) => ({
    id,
    publicKey: b64u.encode(generateX25519KeyPair().publicKey),
  }));
  return (await node.seal.init(2, custodians)).rootToken;
}

describe("threshold keys over the API", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-thr-api-"));
  let shareNodes: InProcessNode[] = [];
  let node: CustosNode;
  let plain: CustosNode;
  let token = "";
  let plainToken = "";

  const call = async (n: CustosNode, t: string, method: string, path: string, body?: unknown) => {
    const res = await n.app.request(path, {
      method,
      headers: { authorization: `Bearer ${t}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Body };
  };
  const api = (method: string, path: string, body?: unknown) => call(node, token, method, path, body);
  const use = { purpose: "TREAT", context: { patient: "p1" } };

  beforeAll(async () => {
    mkdirSync(join(dir, "node"), { mode: 0o700 });
    const identity = NodeIdentity.loadOrCreate(join(dir, "node"), false);
    const key = identity.publicKey;
    identity.dispose();
    shareNodes = await Promise.all(["s1", "s2", "s3"].map((n) => startInProcessNode(n, [key])));
    node = await openNode({
      dataDir: join(dir, "node"),
      log: pino({ level: "silent" }),
      shareNodes: new Map(shareNodes.map((s) => [s.name, s.url])),
    });
    token = await initialised(node);
    plain = await openNode({ dataDir: join(dir, "plain"), log: pino({ level: "silent" }) });
    plainToken = await initialised(plain);
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await plain?.close();
    await Promise.all(shareNodes.map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses threshold keys on a node without share nodes, and bad threshold requests", async () => {
    const none = await call(plain, plainToken, "POST", "/v1/keys", { name: "t", protection: "threshold" });
    expect(none.status).toBe(400);
    expect(none.body.error?.code).toBe("protection_unavailable");
    const cases: [unknown, RegExp][] = [
      [{ name: "a", protection: "software", shareNodes: ["s1"] }, /for protection 'threshold' only/],
      [{ name: "b", protection: "threshold", shareNodes: ["nope"] }, /'nope' is not configured/],
      [{ name: "c", protection: "threshold", threshold: 4 }, /threshold must be between 1 and its 3/],
      [
        {
          name: "d",
          protection: "threshold",
          threshold: 2,
          trustSets: [{ name: "x", threshold: 1, shareNodes: ["s1"] }],
        },
        /either trustSets or shareNodes/,
      ],
      [{ name: "e", protection: "threshold", shareNodes: ["s1", "s1"], threshold: 1 }, /twice/],
    ];
    for (const [body, message] of cases) {
      const r = await api("POST", "/v1/keys", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error?.message).toMatch(message);
    }
  });

  it("round trip, rotation on the same share nodes, refresh of every version, format mix-ups refused", async () => {
    const created = await api("POST", "/v1/keys", { name: "thr", protection: "threshold", threshold: 2 });
    expect(created.status).toBe(201);
    const threshold = created.body.threshold as {
      publicKey: string;
      sets: { threshold: number; shareNodes: { node: string }[] }[];
    };
    expect(threshold.publicKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(threshold.sets[0]!.threshold).toBe(2);
    expect(threshold.sets[0]!.shareNodes.map((n) => n.node)).toEqual(["s1", "s2", "s3"]);
    const v1 = (await api("POST", "/v1/keys/thr/datakey", use)).body as {
      ciphertext: string;
      plaintext: string;
    };
    expect(v1.ciphertext).toMatch(/^custos:v2:/);
    const open = (ciphertext: string) => api("POST", "/v1/keys/thr/decrypt", { ...use, ciphertext });
    expect((await open(v1.ciphertext)).body.plaintext).toBe(v1.plaintext);
    expect((await api("POST", "/v1/keys/thr/rotate")).body.latestVersion).toBe(2);
    const v2 = (await api("POST", "/v1/keys/thr/datakey", use)).body as {
      ciphertext: string;
      keyVersion: number;
    };
    expect(v2.keyVersion).toBe(2);
    const refreshed = await api("POST", "/v1/keys/thr/refresh-shares");
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refreshed).toEqual([1, 2]);
    expect((await open(v1.ciphertext)).body.plaintext).toBe(v1.plaintext);
    expect((await open(v2.ciphertext)).status).toBe(200);

    await api("POST", "/v1/keys", { name: "sw", protection: "software" });
    const sw = (await api("POST", "/v1/keys/sw/datakey", use)).body as { ciphertext: string };
    expect((await api("POST", "/v1/keys/sw/refresh-shares")).body.error?.code).toBe("not_threshold");
    const swAsThr = await open(sw.ciphertext.replace(/^custos:v1:AQJzdw/, "custos:v1:AQN0aHI"));
    expect(swAsThr.status).toBe(400);
    expect(swAsThr.body.error?.code).toBe("decryption_failed");
    const thrAsSw = await api("POST", "/v1/keys/sw/decrypt", { ...use, ciphertext: v1.ciphertext });
    expect(thrAsSw.body.error?.code).toBe("decryption_failed");
    const wrongContext = await api("POST", "/v1/keys/thr/decrypt", {
      ...use,
      context: { patient: "p2" },
      ciphertext: v1.ciphertext,
    });
    expect(wrongContext.body.error?.code).toBe("decryption_failed");

    // Generation and refresh need every share node; unwrapping needs two of three.
    await shareNodes[2]!.close();
    const refresh = await api("POST", "/v1/keys/thr/refresh-shares");
    expect(refresh.status).toBe(503);
    expect(refresh.body.error?.code).toBe("threshold_unavailable");
    expect(refresh.body.error).toMatchObject({ nodes: ["s3"] });
    const rotate = await api("POST", "/v1/keys/thr/rotate");
    expect(rotate.status).toBe(503);
    expect(rotate.body.error?.message).toMatch(/s3/);
    expect((await open(v1.ciphertext)).body.plaintext).toBe(v1.plaintext);
  }, 60_000);
});
