/**
 * The seal: the life cycle of the root key on this node. `init` makes the root
 * key, splits it k-of-N among custodians — or over a custody tree of
 * custodians, repositories and the TPM (tree.ts) — and forgets it only after
 * the shares and the sealed system secrets are durable; after a restart the
 * node is sealed until custodians submit shares to an unseal ceremony and,
 * for a tree, the node has read its repositories and TPM leaf. A ceremony
 * has a nonce and an ephemeral HPKE key, so a submission is bound to it; each
 * submission is checked on its own (ceremony, custodian, decryption, init id,
 * commitment) and a bad one is refused by name without spoiling the shares
 * already accepted. Submissions are serialised, so two submissions for one
 * custodian cannot both pass the duplicate check. Every step is audited, and a
 * step whose audit record cannot be written does not count.
 */
import type { Auditor } from "../audit/auditor.js";
import { durably } from "../audit/auditor.js";
import type { AuditEventInput } from "../audit/event.js";
import { b64u, constantTimeEqual } from "../crypto/bytes.js";
import { unwrap } from "../crypto/envelope.js";
import { type KeyHandle, SoftwareKeyHandle } from "../crypto/key-handle.js";
import { Secret } from "../crypto/secret.js";
import { combineShares, KeyCheckError, keyCheckValue } from "../crypto/shamir.js";
import { CustosError } from "../errors.js";
import type { DisposableKeyHandle } from "../protect/levels.js";
import { type CustodySwitch, type SealConfig, type Store, StoreConflictError } from "../store/store.js";
import { Ceremony } from "./ceremony.js";
import { crashPoint } from "./crash-point.js";
import type { UnsealSubmission } from "./flat-submission.js";
import {
  AUDIT_KEY_CONTEXT,
  type CustodianInput,
  commitInit,
  makeCustody,
  type NewCustody,
} from "./init-ceremony.js";
import { NodeIdentity } from "./node-identity.js";
import type { LeafFailure, NodeShares } from "./node-shares.js";
import { ShareRefusedError } from "./refusal.js";
import { type SealStatus, sealStatus } from "./seal-status.js";
import type { ShareFile } from "./share-format.js";
import { acceptSubmission } from "./submissions.js";
import { leaves, type TreeInput } from "./tree.js";
import { makeTreeCustody, type NewTreeCustody, storeNodeShares } from "./tree-custody.js";
import type { TreeShareFile, TreeUnsealSubmission } from "./tree-share-format.js";
import { applyNodeShares, combineTree, gatherNodeShares } from "./tree-unseal.js";

export type { SealStatus } from "./seal-status.js";

export interface InitResult<F = ShareFile> {
  initId: string;
  threshold: number;
  /** `custos-share/v1` files for a flat k-of-N, `custos-share/v2` for a custody tree. */
  shareFiles: F[];
  rootToken: string;
}

/** Accepted shares are dropped when no custodian has submitted for this long. */
export const DEFAULT_CEREMONY_IDLE_MS = 15 * 60_000;

export interface SealOptions {
  ceremonyIdleMs?: number;
  /** Signs unseal ceremonies (node-identity.ts); an ephemeral one when omitted (tests). */
  identity?: NodeIdentity;
  /**
   * Takes the reconstructed root key over (and disposes it): into the TPM on a
   * node with one, into a SoftwareKeyHandle otherwise (the default). `source`
   * says where the key came from, so a TPM seal is not re-sealed by itself.
   */
  protectRoot?: (rootKey: Secret, source: RootSource) => Promise<DisposableKeyHandle>;
  /** The repositories and TPM leaf of a custody tree (node-shares.ts); without it a tree may hold custodians only. */
  nodeShares?: NodeShares;
}

export type RootSource = "init" | "custodians" | "tpm-seal" | "repositories" | "rotation";

/** What a read of the node-held leaves gave: the status, and every leaf that gave no good share. */
export interface NodeUnsealResult {
  status: SealStatus;
  failures: LeafFailure[];
}

async function softwareRoot(rootKey: Secret): Promise<DisposableKeyHandle> {
  return new SoftwareKeyHandle(rootKey);
}

type Listener = (root: KeyHandle) => Promise<void> | void;

export class SealManager {
  #config: SealConfig | null;
  #root: DisposableKeyHandle | null = null;
  #ceremony: Ceremony | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  /** The read of the node-held leaves in flight, which every concurrent caller shares. */
  #nodeRead: Promise<NodeUnsealResult> | null = null;
  #onUnseal: Listener[] = [];
  #onSeal: (() => void)[] = [];

  private constructor(
    private readonly store: Store,
    private readonly auditor: Auditor,
    config: SealConfig | null,
    private readonly ceremonyIdleMs: number,
    private readonly identity: NodeIdentity,
    private readonly protectRoot: (rootKey: Secret, source: RootSource) => Promise<DisposableKeyHandle>,
    private readonly nodeShares: NodeShares | null,
  ) {
    this.#config = config;
  }

  static async open(store: Store, auditor: Auditor, options: SealOptions = {}): Promise<SealManager> {
    const idle = options.ceremonyIdleMs ?? DEFAULT_CEREMONY_IDLE_MS;
    const identity = options.identity ?? NodeIdentity.generate();
    const protect = options.protectRoot ?? softwareRoot;
    const config = await store.getSealConfig();
    return new SealManager(store, auditor, config, idle, identity, protect, options.nodeShares ?? null);
  }

  onUnseal(listener: Listener): void {
    this.#onUnseal.push(listener);
  }

  onSeal(listener: () => void): void {
    this.#onSeal.push(listener);
  }

  get initialized(): boolean {
    return this.#config !== null;
  }

  get sealed(): boolean {
    return this.#root === null;
  }

  get config(): SealConfig | null {
    return this.#config;
  }

  /** The root key's handle; throws `sealed` when there is none. */
  root(): KeyHandle {
    if (this.#root === null) throw sealedOrUninitialised(this.initialized);
    return this.#root;
  }

  get rootGeneration(): number {
    return this.#config?.rootGeneration ?? 0;
  }

  status(): SealStatus {
    const config = this.#config;
    const ceremony = this.sealed && config ? this.#currentCeremony() : null;
    return sealStatus(config, ceremony, this.sealed, this.identity.publicKey);
  }

  /** The init ceremony. The node is unsealed afterwards. */
  init(threshold: number, custodians: CustodianInput[], requestId?: string): Promise<InitResult> {
    // The flat form, unchanged since version 1: custos-share/v1 files, read back as a one-gate tree.
    const ids = custodians.map((c) => c.id);
    return this.#serially(() =>
      this.#init(
        () => makeCustody(threshold, custodians, this.identity.publicKey),
        `initialised ${threshold}-of-${custodians.length} with custodians ${ids.join(", ")}`,
        requestId,
      ),
    );
  }

  /** The init ceremony over a custody tree: repositories and the TPM leaf get their shares before anything is committed. */
  initTree(tree: TreeInput, requestId?: string): Promise<InitResult<TreeShareFile>> {
    return this.#serially(() =>
      this.#init(
        () => makeTreeCustody(tree, this.identity.publicKey),
        `initialised a custody tree ${tree.threshold} of ${tree.of.length} with leaves ${leaves(tree)
          .map((l) => l.path)
          .join(", ")}`,
        requestId,
      ),
    );
  }

  async #init<F extends ShareFile | TreeShareFile>(
    make: () => Promise<(NewCustody | NewTreeCustody) & { shareFiles: F[] }>,
    what: string,
    requestId?: string,
  ): Promise<InitResult<F>> {
    if (this.#config !== null) {
      throw new CustosError(409, "already_initialized", "custos is already initialised");
    }
    const made = await make();
    const { config, shareFiles, root, rootKey, auditKey } = made;
    root.dispose();
    const initId = config.initId;
    try {
      if ("nodeLeaves" in made) await storeNodeShares(this.nodeShares, made);
      const rootToken = await commitInit(
        this.store,
        this.auditor,
        made,
        `${what}; init id ${initId}`,
        requestId,
      );
      this.#config = config;
      await this.#becomeUnsealed(await this.protectRoot(rootKey, "init"), auditKey);
      return { initId, threshold: config.threshold, shareFiles, rootToken };
    } catch (err) {
      rootKey.dispose();
      auditKey.dispose();
      throw err;
    }
  }

  /** One custodian's share for the current unseal ceremony (`custos-unseal/v3`, or v4 for a custody tree), sealed for an unseal. */
  submit(submission: UnsealSubmission | TreeUnsealSubmission, requestId?: string): Promise<SealStatus> {
    return this.#serially(() => this.#submit(submission, requestId));
  }

  async #submit(sub: UnsealSubmission | TreeUnsealSubmission, requestId?: string): Promise<SealStatus> {
    const config = this.#config;
    if (config === null) {
      throw new CustosError(409, "not_initialized", "custos is not initialised: run custos operator init");
    }
    if (!this.sealed) throw new CustosError(409, "not_sealed", "custos is already unsealed");
    const ceremony = this.#currentCeremony();
    const complete = await acceptSubmission(this.auditor, config, ceremony, sub, requestId);
    if (complete) await this.#complete(config, ceremony, requestId);
    else this.#armExpiry(ceremony);
    return this.status();
  }

  /**
   * Reads the node-held leaves of the custody tree (repositories, TPM) into
   * the current ceremony and unseals when the tree is satisfied. Unattended
   * at start, and on `POST /v1/sys/unseal/repositories`. Throws 503
   * `repositories_unavailable` naming every leaf that failed and every gate
   * still short; the good shares stay in the ceremony (until it expires) for
   * custodians to complete a mixed tree. Concurrent callers share one read
   * in flight; the read runs outside the lock — a slow repository must not
   * hold up custodians' submissions — and its result is applied under it.
   */
  unsealFromNodeShares(requestId?: string): Promise<NodeUnsealResult> {
    this.#nodeRead ??= this.#readNodeHeld(requestId).finally(() => {
      this.#nodeRead = null;
    });
    return this.#nodeRead;
  }

  async #readNodeHeld(requestId?: string): Promise<NodeUnsealResult> {
    const config = this.#config;
    if (config === null) throw sealedOrUninitialised(false);
    if (!this.sealed) return { status: this.status(), failures: [] };
    const ceremony = this.#currentCeremony();
    const gathered = await gatherNodeShares(config, this.nodeShares, ceremony.accepted);
    return this.#serially(async () => {
      if (!this.sealed || this.#ceremony !== ceremony || this.#config !== config) {
        for (const value of gathered.values.values()) value.dispose();
        if (!this.sealed) return { status: this.status(), failures: gathered.failures };
        throw new CustosError(
          409,
          "ceremony_changed",
          "the unseal ceremony ended while the repositories were read; read them again",
        );
      }
      const tree = config.tree as NonNullable<SealConfig["tree"]>; // gatherNodeShares refuses a custody without one
      const { satisfied, failures, reason, shortfall } = applyNodeShares(tree, ceremony, gathered);
      await this.auditor.record(
        this.auditor.event({
          principal: "custos",
          operation: "sys.unseal.repositories",
          decision: satisfied ? "allow" : "deny",
          reason,
          requestId,
        }),
      );
      if (satisfied) {
        await this.#complete(config, ceremony, requestId);
        return { status: this.status(), failures };
      }
      this.#armExpiry(ceremony);
      throw new CustosError(503, "repositories_unavailable", shortfall, {
        failed: failures.map((f) => f.path),
      });
    });
  }

  async #complete(config: SealConfig, ceremony: Ceremony, requestId?: string): Promise<void> {
    const holders = [...ceremony.accepted.keys()];
    let rk: Secret;
    try {
      rk = config.tree
        ? await combineTree(config, config.tree, ceremony.accepted)
        : await combineShares(
            [...ceremony.accepted.values()].map((share) => share.reveal()),
            b64u.decode(config.kcv, "kcv"),
          );
    } catch (err) {
      this.#resetCeremony();
      if (!(err instanceof KeyCheckError)) throw err;
      await this.auditor.record(
        this.auditor.event({
          principal: "custos",
          operation: "sys.unseal",
          decision: "error",
          reason: `key check value mismatch with shares of ${holders.join(", ")}`,
          requestId,
        }),
      );
      throw new ShareRefusedError(holders.join(", "), "key_check_failed");
    }
    this.#resetCeremony();
    const custodial = config.tree ? holders.every((h) => h.includes("/custodian:")) : true;
    const source: RootSource = custodial ? "custodians" : "repositories";
    const by = config.tree ? `leaves ${holders.join(", ")}` : `custodians ${holders.join(", ")}`;
    await this.#unsealWith(rk, source, `unsealed by ${by}`, requestId);
  }

  /**
   * Unseals with a root key that came from elsewhere than this node's
   * custodians (the TPM seal): it must pass the key check value of this
   * node's init, and the event says where it came from.
   */
  unsealWithRootKey(rk: Secret, source: RootSource, reason: string): Promise<void> {
    return this.#serially(async () => {
      const config = this.#config;
      if (!config) {
        rk.dispose();
        throw sealedOrUninitialised(false);
      }
      if (!this.sealed) {
        rk.dispose();
        return;
      }
      if (!constantTimeEqual(keyCheckValue(rk), b64u.decode(config.kcv, "kcv"))) {
        rk.dispose();
        await this.auditor.record(
          this.auditor.event({
            principal: "custos",
            operation: "sys.unseal",
            decision: "error",
            reason: `${source}: key check value mismatch`,
          }),
        );
        throw new KeyCheckError();
      }
      this.#resetCeremony();
      await this.#unsealWith(rk, source, reason);
    });
  }

  async #unsealWith(rk: Secret, source: RootSource, reason: string, requestId?: string): Promise<void> {
    const root = await this.protectRoot(rk, source);
    let auditKey: Secret | null = null;
    try {
      const sealed = await this.store.getSysSecret("audit-key");
      if (sealed === null) throw new Error("sealed audit key missing from the store");
      auditKey = Secret.of(await unwrap(root, sealed, AUDIT_KEY_CONTEXT));
      await durably(() =>
        this.store.appendAudit([
          this.auditor.event({
            principal: "custos",
            operation: "sys.unseal",
            decision: "allow",
            reason,
            requestId,
          }),
        ]),
      );
      await this.#becomeUnsealed(root, auditKey);
    } catch (err) {
      root.dispose();
      auditKey?.dispose();
      throw err;
    }
  }

  async #becomeUnsealed(root: DisposableKeyHandle, auditKey: Secret): Promise<void> {
    this.#root = root;
    this.auditor.setContextKey(auditKey);
    try {
      for (const listener of this.#onUnseal) await listener(root);
    } catch (err) {
      this.#dropRoot();
      throw err;
    }
  }

  /**
   * The switch of a custody change (custody-change.ts, docs/FORMATS.md §5.9):
   * `prepare` builds the switch with the current root (for a rotation it
   * re-seals every record under the new root), the store applies it with its
   * audit event in one transaction — retried when the key ring changed
   * meanwhile — and only then does this node hold the new configuration and,
   * for a rotation, the new root key (`newRootKey`, taken over and disposed
   * of; re-sealed to the TPM by `protectRoot` when the TPM seal is on). If
   * the new root cannot be protected, the node seals: its custodians' new
   * shares open it. Serialised with unseal and seal.
   */
  switchCustody(
    prepare: (root: KeyHandle) => Promise<CustodySwitch>,
    event: () => AuditEventInput,
    newRootKey: Secret | null,
  ): Promise<SealConfig> {
    return this.#serially(async () => {
      try {
        const root = this.root();
        let change = await prepare(root);
        crashPoint("switch.resealed");
        for (let attempt = 1; ; attempt++) {
          try {
            await this.store.switchCustody(change, event());
            break;
          } catch (err) {
            if (err instanceof StoreConflictError && attempt < 3 && change.resealed.length > 0) {
              change = await prepare(root);
              continue;
            }
            // Outcome unknown (the writer died around the commit): the store says which custody it holds.
            const stored =
              err instanceof StoreConflictError ? null : await this.store.getSealConfig().catch(() => null);
            if (stored?.initId !== change.config.initId) {
              await durably(() => Promise.reject(err)); // 409 conflict, 503 audit_unavailable, or err
              throw err;
            }
            break;
          }
        }
        crashPoint("switch.committed");
        this.#config = change.config;
        if (newRootKey !== null) {
          const key = newRootKey;
          newRootKey = null;
          let handle: DisposableKeyHandle;
          try {
            handle = await this.protectRoot(key, "rotation");
          } catch (err) {
            this.#dropRoot();
            throw err;
          }
          // Loaded keys and the audit signer let go of the old root's records, then take the new root.
          for (const listener of this.#onSeal) listener();
          const old = this.#root;
          this.#root = handle;
          old?.dispose();
          for (const listener of this.#onUnseal) await listener(handle);
        }
        crashPoint("switch.adopted");
        return change.config;
      } finally {
        newRootKey?.dispose();
      }
    });
  }

  /** Seals the node: the root key, every loaded key and the audit key are dropped. */
  seal(principal: string, requestId?: string): Promise<void> {
    return this.#serially(async () => {
      if (this.sealed) return;
      await this.auditor.record(
        this.auditor.event({ principal, operation: "sys.seal", decision: "allow", requestId }),
      );
      this.#dropRoot();
    });
  }

  /** Seals because the root key was lost under us (the TPM was reset): audited, with the reason. */
  sealBecause(reason: string): Promise<void> {
    return this.#serially(async () => {
      if (this.sealed) return;
      this.#dropRoot();
      await this.auditor
        .record(this.auditor.event({ principal: "custos", operation: "sys.seal", decision: "allow", reason }))
        .catch(() => {}); // sealed either way; a failed write is in the operator log
    });
  }

  /** Discards the shares of the current unseal ceremony and starts a new one. */
  reset(principal: string, requestId?: string): Promise<SealStatus> {
    return this.#serially(async () => {
      if (!this.sealed) throw new CustosError(409, "not_sealed", "custos is already unsealed");
      await this.auditor.record(
        this.auditor.event({
          principal,
          operation: "sys.unseal.reset",
          decision: "allow",
          reason: `discarded ${this.#ceremony?.accepted.size ?? 0} submitted share(s)`,
          requestId,
        }),
      );
      this.#resetCeremony();
      return this.status();
    });
  }

  /** Drops all secrets without auditing (process shutdown). */
  shutdown(): void {
    this.#dropRoot();
    this.#resetCeremony();
  }

  #dropRoot(): void {
    for (const listener of this.#onSeal) listener();
    this.auditor.setContextKey(null);
    this.#root?.dispose();
    this.#root = null;
  }

  #currentCeremony(): Ceremony {
    this.#ceremony ??= new Ceremony(this.identity, this.#config?.initId ?? "");
    return this.#ceremony;
  }

  /** (Re)arms the idle timer after a share was accepted: shares never linger in memory unattended. */
  #armExpiry(ceremony: Ceremony): void {
    ceremony.arm(this.ceremonyIdleMs, () => {
      this.#serially(async () => {
        if (this.#ceremony !== ceremony) return;
        this.#resetCeremony();
        await this.auditor.record(
          this.auditor.event({
            principal: "custos",
            operation: "sys.unseal.reset",
            decision: "allow",
            reason: `unseal ceremony expired after ${Math.round(this.ceremonyIdleMs / 1000)} s without a submission; shares discarded`,
          }),
        );
      }).catch(() => {
        // The shares are gone either way; an audit failure here is reported by the store's own errors.
      });
    });
  }

  #resetCeremony(): void {
    this.#ceremony?.dispose();
    this.#ceremony = null;
  }

  #serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

export function sealedOrUninitialised(initialized: boolean): CustosError {
  return initialized
    ? new CustosError(503, "sealed", "custos is sealed: custodians must unseal it (custos operator unseal)")
    : new CustosError(503, "not_initialized", "custos is not initialised: run custos operator init");
}
