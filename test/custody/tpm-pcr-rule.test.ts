/**
 * Finding 16 of issue 10: a custody tree's `tpm` leaf took PCRs 16 and 23,
 * which the TPM seal route refuses because software can reset them — so an
 * operator could init or rekey a node whose TPM share was bound to a PCR any
 * process can reset and extend back. Performed as the attack was: on a node
 * with a real TPM (swtpm), `POST /v1/sys/init` and `POST /v1/sys/rekey/init`
 * with a tpm leaf on PCR 16 or 23; both must now be a 400 naming the PCR, and
 * the TPM seal route must still refuse the same PCRs (one rule,
 * src/tpm/resettable-pcrs.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CustosNode, openNode } from "../../src/api/server.js";
import { b64u } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";
import { type Swtpm, skipSwtpm, startSwtpm } from "../helpers/swtpm.js";

const custodians = ["alice", "bob"].map((id) => ({
  custodian: id,
  publicKey: b64u.encode(generateX25519KeyPair().publicKey),
}));
const treeWith = (pcrs: number[]) => ({ threshold: 2, of: [{ tpm: "node-a", pcrs }, ...custodians] });

describe.skipIf(skipSwtpm)("finding 16: a tpm leaf on a software-resettable PCR is refused", () => {
  let swtpm: Swtpm;
  let node: CustosNode;
  let dir: string;
  let rootToken = "";

  const call = async (method: string, path: string, body?: unknown, token = rootToken) => {
    const res = await node.app.request(path, {
      method,
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as { error?: { code: string; message: string } } };
  };

  beforeAll(async () => {
    swtpm = await startSwtpm();
    dir = mkdtempSync(join(tmpdir(), "custos-pcr-rule-"));
    node = await openNode({ dataDir: dir, log: pino({ level: "silent" }), tpm: swtpm.address });
  }, 60_000);
  afterAll(async () => {
    await node?.close();
    await swtpm?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it("finding 16: init and rekey refuse tpm leaves on PCR 16 or 23 with a 400 naming the PCR; the TPM seal route too", async () => {
    for (const pcr of [16, 23]) {
      const r = await call("POST", "/v1/sys/init", { tree: treeWith([7, pcr]) }, "");
      expect(r.status, `init with PCR ${pcr}`).toBe(400);
      expect(r.json.error?.code).toBe("invalid_tree");
      expect(r.json.error?.message).toContain(`root/tpm:node-a: PCR ${pcr} can be reset by software`);
    }
    expect(node.seal.initialized).toBe(false);

    // The node is initialised with a sound tpm leaf; a rekey onto a resettable PCR is refused the same way.
    const init = await call("POST", "/v1/sys/init", { tree: treeWith([7]) }, "");
    expect(init.status).toBe(200);
    rootToken = (init.json as unknown as { rootToken: string }).rootToken;
    for (const pcr of [16, 23]) {
      const r = await call("POST", "/v1/sys/rekey/init", { tree: treeWith([pcr]) });
      expect(r.status, `rekey with PCR ${pcr}`).toBe(400);
      expect(r.json.error?.message).toContain(`PCR ${pcr} can be reset by software`);
    }
    expect((await call("GET", "/v1/sys/rekey")).json).toMatchObject({ active: false });

    for (const pcr of [16, 23]) {
      const r = await call("POST", "/v1/sys/tpm-seal", { pcrs: [7, pcr] });
      expect(r.status, `tpm-seal with PCR ${pcr}`).toBe(400);
      expect(r.json.error?.message).toContain(`PCR ${pcr} can be reset by software`);
    }
  }, 120_000);
});
