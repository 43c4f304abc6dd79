/**
 * Unattended unseal at start: a node whose custody tree has repository or
 * tpm leaves reads them itself when it starts sealed, and unseals when enough
 * good shares answer. What failed is logged by path and reason — repository
 * names and hosts, never credentials (node-shares.ts scrubs them) — and the
 * node stays up, sealed, for custodians or a later
 * `POST /v1/sys/unseal/repositories`.
 */
import type { Logger } from "pino";
import { b64u } from "../crypto/bytes.js";
import type { RepositoryConfig } from "../repository/config.js";
import type { TpmClient } from "../tpm/client.js";
import type { NodeIdentity } from "./node-identity.js";
import { isNodeHeld, NodeShares } from "./node-shares.js";
import type { SealManager } from "./seal.js";
import { leaves } from "./tree.js";

/** The node-held leaves' sources on this node, or undefined when it has neither repositories nor a TPM. */
export function nodeSharesFor(
  identity: NodeIdentity,
  repositories: RepositoryConfig | undefined,
  tpm: TpmClient | undefined,
  dataDir: string,
  log: Logger,
): NodeShares | undefined {
  if (!repositories && !tpm) return undefined;
  if (repositories)
    log.info(
      { repositories: repositories.summary, nodeKey: b64u.encode(identity.publicKey) },
      "share repositories configured (a share node scopes this node's token to nodeKey: --repository-client)",
    );
  return new NodeShares({
    identity,
    repositories: repositories?.repositories,
    timeoutMs: repositories?.timeoutMs,
    secrets: repositories?.secrets,
    tpm: tpm ? { client: tpm, dataDir } : undefined,
    log,
  });
}

/** Tries the node-held leaves once; never throws. True when the node is unsealed afterwards. */
export async function unsealUnattended(seal: SealManager, log: Logger): Promise<boolean> {
  const tree = seal.config?.tree;
  if (!seal.sealed || !tree || !leaves(tree).some(isNodeHeld)) return !seal.sealed;
  try {
    const { failures } = await seal.unsealFromNodeShares();
    for (const f of failures)
      log.warn({ path: f.path, reason: f.reason }, "a share repository gave no good share");
    log.info("unsealed by the custody tree's repositories");
    return true;
  } catch (err) {
    log.error({ reason: (err as Error).message }, "unattended unseal did not succeed; the node stays sealed");
    return false;
  }
}
