/**
 * A custodian's share never goes to a server that cannot prove it is the node
 * that made the share: an impostor at CUSTOS_ADDR that relays the real node's
 * seal status but publishes its own ceremony key gets nothing, and the real
 * node accepts the same share through the same CLI.
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ListeningNode, listen, openNode } from "../../src/api/server.js";
import { b64u } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";
import { generateCustodianKey } from "../../src/custody/custodian-key.js";
import { runCli } from "./harness.js";

describe("unseal against an impostor", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-impostor-"));
  let node: ListeningNode;
  let impostor: Server;
  let impostorUrl: string;
  const posts: string[] = [];

  beforeAll(async () => {
    node = await listen(
      await openNode({ dataDir: join(dir, "data"), log: pino({ level: "silent" }) }),
      "127.0.0.1",
      0,
    );
    writeFileSync(join(dir, "pass"), "pw-for-tests");
    const custodians = [];
    for (const id of ["ann", "ben"]) {
      const { publicFile, privateFile } = await generateCustodianKey(id, "pw-for-tests", {
        scryptN: 2 ** 15,
      });
      writeFileSync(join(dir, `${id}.key`), JSON.stringify(privateFile));
      custodians.push({ id, publicKey: publicFile.publicKey });
    }
    const init = await node.seal.init(2, custodians);
    for (const f of init.shareFiles) writeFileSync(join(dir, `${f.custodian}.share`), JSON.stringify(f));
    await node.seal.seal("test");

    // Relays the real status, but with its own ceremony key; records anything posted to it.
    const own = b64u.encode(generateX25519KeyPair().publicKey);
    impostor = createServer(async (req, res) => {
      if (req.method === "GET" && req.url === "/v1/sys/seal-status") {
        const status = (await (await fetch(`${node.url}/v1/sys/seal-status`)).json()) as Record<
          string,
          unknown
        >;
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ ...status, ceremonyPublicKey: own }));
        return;
      }
      let body = "";
      req.on("data", (d: Buffer) => {
        body += d.toString();
      });
      req.on("end", () => {
        posts.push(body);
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ sealed: true }));
      });
    });
    await new Promise<void>((resolve) => impostor.listen(0, "127.0.0.1", resolve));
    impostorUrl = `http://127.0.0.1:${(impostor.address() as AddressInfo).port}`;
  }, 60_000);

  afterAll(async () => {
    await new Promise<void>((resolve) => impostor?.close(() => resolve()));
    await node?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const unseal = (addr: string) =>
    runCli(
      [
        "operator",
        "unseal",
        "--share",
        join(dir, "ann.share"),
        "--identity",
        join(dir, "ann.key"),
        "--passphrase-file",
        join(dir, "pass"),
      ],
      { CUSTOS_ADDR: addr },
    );

  it("refuses to send the share to the impostor", async () => {
    const r = await unseal(impostorUrl);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("did not prove");
    expect(r.stderr).toContain("not sent");
    expect(posts).toEqual([]);
  });

  it("sends it to the real node", async () => {
    const r = await unseal(node.url);
    expect(r.code).toBe(0);
    expect(node.seal.status().progress).toBe(1);
  });
});
