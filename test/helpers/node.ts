/**
 * A node on a temporary data directory, initialised 2-of-2 with throwaway
 * custodians, for tests that need an unsealed node but not the ceremony
 * itself. `close()` also removes the directory.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { type CustosNode, type NodeOptions, openNode } from "../../src/api/server.js";
import { b64u } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";

export interface TestNode {
  node: CustosNode;
  dir: string;
  rootToken: string;
  close(): Promise<void>;
}

export async function initialisedNode(options: Partial<NodeOptions> = {}): Promise<TestNode> {
  const dir = mkdtempSync(join(tmpdir(), "custos-test-"));
  const node = await openNode({ dataDir: dir, log: pino({ level: "silent" }), ...options });
  const custodians = ["a1", "b2"].map((id) => ({
    id,
    publicKey: b64u.encode(generateX25519KeyPair().publicKey),
  }));
  const { rootToken } = await node.seal.init(2, custodians);
  return {
    node,
    dir,
    rootToken,
    async close() {
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
