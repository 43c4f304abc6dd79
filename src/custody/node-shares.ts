/**
 * The leaves of a custody tree that the node reads by itself: repositories
 * and this node's TPM. At init it stores their shares — each repository gets
 * a `custos-repository-share/v1` document sealed to the node's repository key
 * (docs/FORMATS.md §5.8), the TPM leaf's value is sealed to the TPM under a
 * PCR policy and kept in DATA/tpm-share/ — and at unseal it gathers them, all
 * at once, each with its own timeout, and stops waiting as soon as the tree
 * is satisfied. Every leaf that does not give a good share is named with its
 * path and why (unreachable, timed out, nothing stored, fails its
 * commitment); a repository's error messages are scrubbed of configured
 * credentials before anyone sees them.
 */
import { join } from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { b64u, hex } from "../crypto/bytes.js";
import { x25519PublicKey } from "../crypto/hpke.js";
import { Secret } from "../crypto/secret.js";
import { sealToTpm, TPM_SEAL_FORMAT, type TpmSealRecord, unsealFromTpm } from "../protect/tpm-seal.js";
import { redact } from "../repository/config.js";
import { DirectoryRepository } from "../repository/directory.js";
import { type ShareRepository, shareKey } from "../repository/share-repository.js";
import type { TpmClient } from "../tpm/client.js";
import type { NodeIdentity } from "./node-identity.js";
import { ShareOpenError } from "./share-format.js";
import type { Leaf } from "./tree.js";
import { openRepositoryShare, sealRepositoryShare } from "./tree-share-format.js";
import { verifyLeaf } from "./tree-split.js";

export const REPOSITORY_KEY_LABEL = "custos/repository-key/v1";
const TPM_SHARE_FORMAT = "custos-tpm-share/v1";
const DEFAULT_TPM_PCRS = [7];

/** DATA/tpm-share/*.share: the TPM leaf's sealed value (docs/FORMATS.md §5.5); the record is checked again by the TPM. */
const TpmShareSchema = z.strictObject({
  format: z.literal(TPM_SHARE_FORMAT),
  initId: z.string().regex(/^[0-9a-f]{32}$/),
  path: z.string().max(255),
  record: z.looseObject({
    format: z.literal(TPM_SEAL_FORMAT),
    srkName: z.string(),
    pcrs: z.array(z.number().int()),
  }),
});

export interface NodeSharesOptions {
  identity: NodeIdentity;
  repositories?: Map<string, ShareRepository>;
  /** Per-repository timeout for a read at unseal. */
  timeoutMs?: number;
  /** Credentials to scrub from error messages. */
  secrets?: readonly string[];
  /** This node's TPM and data directory, for a tpm leaf. */
  tpm?: { client: TpmClient; dataDir: string } | undefined;
  log?: Logger | undefined;
}

/** Why a node-held leaf gave no good share. */
export interface LeafFailure {
  path: string;
  reason: string;
}

export interface Gathered {
  values: Map<string, Secret>;
  failures: LeafFailure[];
}

export function isNodeHeld(leaf: Leaf): boolean {
  return leaf.kind === "repository" || leaf.kind === "tpm";
}

export class NodeShares {
  readonly #identity: NodeIdentity;
  readonly #repositories: Map<string, ShareRepository>;
  readonly #timeoutMs: number;
  readonly #secrets: readonly string[];
  readonly #tpm: NodeSharesOptions["tpm"];
  readonly #log: Logger | undefined;

  constructor(options: NodeSharesOptions) {
    this.#identity = options.identity;
    this.#repositories = options.repositories ?? new Map();
    this.#timeoutMs = options.timeoutMs ?? 3000;
    this.#secrets = options.secrets ?? [];
    this.#tpm = options.tpm;
    this.#log = options.log;
  }

  /** Names the leaves this node could not serve at init (unknown repository, no TPM). */
  check(nodeLeaves: Leaf[]): string[] {
    return nodeLeaves.flatMap((leaf) => {
      if (leaf.kind === "repository" && !this.#repositories.has(leaf.id)) {
        return [`${leaf.path}: repository '${leaf.id}' is not in this node's --repositories configuration`];
      }
      if (leaf.kind === "tpm" && !this.#tpm) return [`${leaf.path}: this node has no TPM (--tpm)`];
      return [];
    });
  }

  #tpmStore(): DirectoryRepository {
    if (!this.#tpm) throw new Error("this node has no TPM");
    return new DirectoryRepository(join(this.#tpm.dataDir, "tpm-share"));
  }

  /** Stores every node-held leaf's value; all must succeed, or init fails naming the first that did not. */
  async store(initId: Uint8Array, nodeLeaves: Leaf[], values: ReadonlyMap<string, Secret>): Promise<void> {
    const repoKey = this.#identity.deriveX25519(REPOSITORY_KEY_LABEL);
    const repoPublic = x25519PublicKey(repoKey);
    repoKey.dispose();
    const initHex = hex.encode(initId);
    await Promise.all(
      nodeLeaves.map(async (leaf) => {
        const value = values.get(leaf.path);
        if (!value) throw new Error(`no value for ${leaf.path}`);
        const key = shareKey(initHex, leaf.path);
        try {
          if (leaf.kind === "tpm") {
            if (!this.#tpm) throw new Error("this node has no TPM");
            const copy = Secret.of(value.reveal().slice());
            const record = await sealToTpm(this.#tpm.client, copy, {
              pcrs: leaf.pcrs ?? DEFAULT_TPM_PCRS,
            }).finally(() => copy.dispose());
            const doc = { format: TPM_SHARE_FORMAT, initId: initHex, path: leaf.path, record };
            await this.#tpmStore().put(key, Buffer.from(JSON.stringify(doc)));
            return;
          }
          const repo = this.#repositories.get(leaf.id);
          if (!repo) throw new Error(`repository '${leaf.id}' is not configured`);
          const doc = await sealRepositoryShare(
            { initId, path: leaf.path, value },
            repoPublic,
            this.#identity.publicKey,
          );
          await repo.put(key, Buffer.from(JSON.stringify(doc)));
        } catch (err) {
          throw new Error(
            `storing the share of ${leaf.path} failed: ${redact((err as Error).message, this.#secrets)}`,
          );
        }
      }),
    );
  }

  /**
   * Reads the node-held leaves in parallel. Resolves as soon as `enough`
   * says the values gathered (with those the caller already has) satisfy the
   * tree, or when every leaf has answered or timed out. Values arriving
   * later are disposed of.
   */
  async gather(
    initId: string,
    nodeLeaves: Leaf[],
    enough: (paths: Set<string>) => boolean,
  ): Promise<Gathered> {
    const values = new Map<string, Secret>();
    const failures: LeafFailure[] = [];
    if (nodeLeaves.length === 0) return { values, failures };
    const repoKey = this.#identity.deriveX25519(REPOSITORY_KEY_LABEL);
    let done = false;
    return new Promise<Gathered>((resolve) => {
      let pending = nodeLeaves.length;
      const finish = () => {
        done = true;
        repoKey.dispose();
        // Leaves still out when the tree was satisfied are not failures: nobody waited for them.
        resolve({ values, failures });
      };
      for (const leaf of nodeLeaves) {
        this.#readLeaf(initId, leaf, repoKey)
          .then(
            (value) => {
              if (done) value.dispose();
              else values.set(leaf.path, value);
            },
            (err: unknown) => {
              if (!done)
                failures.push({ path: leaf.path, reason: redact((err as Error).message, this.#secrets) });
            },
          )
          .finally(() => {
            pending--;
            if (!done && (pending === 0 || enough(new Set(values.keys())))) finish();
          });
      }
    });
  }

  async #readLeaf(initId: string, leaf: Leaf, repoKey: Secret): Promise<Secret> {
    const key = shareKey(initId, leaf.path);
    const initBytes = hex.decode(initId, "initId");
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${this.#timeoutMs} ms`)), this.#timeoutMs);
      timer.unref();
    });
    try {
      const value = await Promise.race([this.#fetch(leaf, key, initId, repoKey), timeout]);
      if (!verifyLeaf(initBytes, leaf.path, value.reveal(), b64u.decode(leaf.commitment, "commitment"))) {
        value.dispose();
        throw new Error("bad share: it does not match its commitment (corrupted or altered)");
      }
      return value;
    } finally {
      clearTimeout(timer);
    }
  }

  async #fetch(leaf: Leaf, key: string, initId: string, repoKey: Secret): Promise<Secret> {
    if (leaf.kind === "tpm") {
      if (!this.#tpm) throw new Error("this node has no TPM");
      const bytes = await this.#tpmStore().get(key);
      if (!bytes) throw new Error("no TPM share in this data directory");
      const doc = TpmShareSchema.safeParse(JSON.parse(Buffer.from(bytes).toString("utf8")));
      if (!doc.success || doc.data.initId !== initId || doc.data.path !== leaf.path) {
        throw new Error(
          `bad share: DATA/tpm-share holds no valid ${TPM_SHARE_FORMAT} document for this path`,
        );
      }
      return unsealFromTpm(this.#tpm.client, doc.data.record as unknown as TpmSealRecord);
    }
    const repo = this.#repositories.get(leaf.id);
    if (!repo) throw new Error(`repository '${leaf.id}' is not configured on this node`);
    let bytes: Uint8Array | null;
    try {
      bytes = await repo.get(key);
    } catch (err) {
      this.#log?.warn({ repository: leaf.id, path: leaf.path }, "repository unreachable");
      throw new Error(`unreachable: ${(err as Error).message}`);
    }
    if (bytes === null) throw new Error("the repository holds no share for this path");
    try {
      const payload = await openRepositoryShare(bytes, repoKey, this.#identity.publicKey, {
        initId,
        path: leaf.path,
      });
      return payload.value;
    } catch (err) {
      if (err instanceof ShareOpenError) throw new Error(`bad share: ${err.message}`);
      throw err;
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#repositories.values()].map((r) => r.close?.().catch(() => {})));
  }
}
