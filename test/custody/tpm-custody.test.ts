/**
 * The TPM's part in custody on a real node with a real swtpm: the TPM seal is
 * pending until the root key is next reconstructed, then active in a 0600
 * file; a node restarted on the same TPM opens it; a corrupt file stops the
 * node instead of being ignored; resettable PCRs are refused; routes answer
 * by role, and a node without a TPM says so.
 */
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openNode } from "../../src/api/server.js";
import { randomBytes } from "../../src/crypto/bytes.js";
import { TpmClient } from "../../src/tpm/client.js";
import { pcrExtend } from "../../src/tpm/commands/pcr-extend.js";
import { SwtpmTransport } from "../../src/tpm/transport.js";
import { initialisedNode, type TestNode } from "../helpers/node.js";
import { type Swtpm, skipSwtpm, startSwtpm } from "../helpers/swtpm.js";

const call = async (t: TestNode, method: string, path: string, token: string, body?: unknown) => {
  const res = await t.node.app.request(path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
};

describe("TPM seal routes on a node without a TPM", () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await initialisedNode();
  });
  afterAll(async () => t?.close());

  it("answers 404 no_tpm, and seal-status says the root key is in process memory", async () => {
    const r = await call(t, "GET", "/v1/sys/tpm-seal", t.rootToken);
    expect(r.status).toBe(404);
    expect(r.json).toMatchObject({ error: { code: "no_tpm" } });
    const s = await call(t, "GET", "/v1/sys/seal-status", t.rootToken);
    expect(s.json).toMatchObject({ protection: "software" });
    expect(s.json.tpmSeal).toBeUndefined();
  });

  it("refuses tpm keys with a 400 that says what to do", async () => {
    const r = await call(t, "POST", "/v1/keys", t.rootToken, { name: "k1", protection: "tpm" });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ error: { code: "protection_unavailable" } });
  });
});

describe.skipIf(skipSwtpm)("TPM seal on a node with a TPM (swtpm)", () => {
  let swtpm: Swtpm;
  let t: TestNode;
  let adminToken: string;

  beforeAll(async () => {
    swtpm = await startSwtpm();
    t = await initialisedNode({ tpm: swtpm.address });
    const r = await call(t, "POST", "/v1/tokens", t.rootToken, { principal: "kim", roles: ["admin"] });
    adminToken = r.json.token as string;
  });
  afterAll(async () => {
    await t?.close();
    await swtpm?.destroy();
  });

  it("an admin may read the TPM seal but not enable it; root may; bad PCR lists are 400", async () => {
    expect((await call(t, "GET", "/v1/sys/tpm-seal", adminToken)).json).toMatchObject({ state: "off" });
    expect((await call(t, "POST", "/v1/sys/tpm-seal", adminToken, { pcrs: [7] })).status).toBe(403);
    for (const pcrs of [[23], [7, 16], [24], [], ["7"]]) {
      const r = await call(t, "POST", "/v1/sys/tpm-seal", t.rootToken, { pcrs });
      expect(r.status, JSON.stringify(pcrs)).toBe(400);
    }
    const ok = await call(t, "POST", "/v1/sys/tpm-seal", t.rootToken, { pcrs: [7, 0] });
    expect(ok.json).toMatchObject({ state: "pending", pcrs: [0, 7] });
  });

  it("becomes active when the root key is next reconstructed, in a 0600 file, and opens on a restart", async () => {
    const tpm = t.node.tpm;
    if (!tpm) throw new Error("node has no TPM");
    // What a custodians' unseal does: the reconstructed key goes through protectRoot.
    const { Secret } = await import("../../src/crypto/secret.js");
    const handle = await tpm.protectRoot(Secret.random(32), "custodians");
    handle.dispose();
    expect(tpm.statusNow().lastError).toBeNull();
    const path = join(t.dir, "tpm-seal.json");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, "utf8"))).toMatchObject({
      state: "active",
      record: { pcrs: [0, 7] },
    });
    // That key is not this node's root key: the KCV check refuses it, audited, and the node stays as it was.
    await t.node.close();
    const reopened = await openNode({ dataDir: t.dir, log: pino({ level: "silent" }), tpm: swtpm.address });
    expect(reopened.seal.sealed).toBe(true);
    expect(reopened.tpm?.statusNow().lastError).toMatch(/key check value/);
    await reopened.close();
  });

  it("names the changed PCR in its status, and a corrupt file stops the node from starting", async () => {
    const tpmClient = new TpmClient(new SwtpmTransport({ host: "127.0.0.1", port: swtpm.port }));
    await tpmClient.exclusive((x) => pcrExtend(x, 0, randomBytes(32)));
    await tpmClient.close();
    const node = await openNode({ dataDir: t.dir, log: pino({ level: "silent" }), tpm: swtpm.address });
    expect((await node.tpm?.status())?.changedPcrs).toEqual([0]);
    await node.close();
    writeFileSync(join(t.dir, "tpm-seal.json"), '{"format":"custos-tpm-seal-config/v1","state":"active"}');
    await expect(
      openNode({ dataDir: t.dir, log: pino({ level: "silent" }), tpm: swtpm.address }),
    ).rejects.toThrow(/not a valid custos-tpm-seal-config\/v1 file/);
  });
});
