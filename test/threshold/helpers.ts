/** In-process share nodes on loopback ports, and a throwaway custos signer, for threshold tests. */
import { mkdtempSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { ed25519 } from "@noble/curves/ed25519.js";
import { Hono } from "hono";
import { ShareNodeKeys } from "../../src/share-node/node-keys.js";
import { PartialAudit } from "../../src/share-node/partial-audit.js";
import { ShareFiles } from "../../src/share-node/share-files.js";
import { thresholdRoutes } from "../../src/share-node/threshold-routes.js";
import { type RequestSigner, RequestVerifier } from "../../src/threshold/request-auth.js";

export function testSigner(): RequestSigner {
  const sk = ed25519.utils.randomSecretKey();
  return { publicKey: ed25519.getPublicKey(sk), sign: (m) => ed25519.sign(m, sk) };
}

export interface InProcessNode {
  name: string;
  url: string;
  dataDir: string;
  close(): Promise<void>;
}

export async function startInProcessNode(
  name: string,
  allowed: Uint8Array[],
  opts: { wrongPartials?: boolean; dataDir?: string } = {},
): Promise<InProcessNode> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), `custos-share-${name}-`));
  const keys = ShareNodeKeys.loadOrCreate(dataDir);
  const app = new Hono();
  thresholdRoutes(app, {
    keys,
    files: new ShareFiles(dataDir),
    audit: new PartialAudit(dataDir),
    verifier: new RequestVerifier(keys.publicKey, allowed),
    wrongPartials: opts.wrongPartials,
  });
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    dataDir,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections(): void }).closeAllConnections();
      }),
  };
}
