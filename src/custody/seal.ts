/**
 * The seal: the life cycle of the root key on this node. `init` makes the root
 * key, splits it k-of-N among custodians and forgets it only after the shares
 * and the sealed system secrets are durable; after a restart the node is
 * sealed until k custodians submit shares to an unseal ceremony. A ceremony
 * has a nonce and an ephemeral HPKE key, so a submission is bound to it; each
 * submission is checked on its own (ceremony, custodian, decryption, init id,
 * commitment) and a bad one is refused by name without spoiling the shares
 * already accepted. Submissions are serialised, so two submissions for one
 * custodian cannot both pass the duplicate check. Every step is audited, and a
 * step whose audit record cannot be written does not count.
 */
import type { Auditor } from "../audit/auditor.js";
import { durably } from "../audit/auditor.js";
import { b64u, constantTimeEqual, hex, randomBytes } from "../crypto/bytes.js";
import { unwrap } from "../crypto/envelope.js";
import { generateX25519KeyPair } from "../crypto/hpke.js";
import { type KeyHandle, SoftwareKeyHandle } from "../crypto/key-handle.js";
import { Secret } from "../crypto/secret.js";
import { combineShares, KeyCheckError, keyCheckValue, verifyShareCommitment } from "../crypto/shamir.js";
import { hashToken, newToken } from "../crypto/token.js";
import { CustosError } from "../errors.js";
import type { DisposableKeyHandle } from "../protect/levels.js";
import type { SealConfig, Store } from "../store/store.js";
import { AUDIT_KEY_CONTEXT, type CustodianInput, makeCustody } from "./init-ceremony.js";
import { NodeIdentity } from "./node-identity.js";
import { type ShareRefusal, ShareRefusedError } from "./refusal.js";
import {
  openUnsealSubmission,
  type ShareFile,
  type SharePayload,
  type UnsealSubmission,
} from "./share-format.js";

export interface InitResult {
  initId: string;
  threshold: number;
  shareFiles: ShareFile[];
  rootToken: string;
}

export interface SealStatus {
  initialized: boolean;
  sealed: boolean;
  threshold: number;
  shares: number;
  progress: number;
  /** Current unseal ceremony: nonce (hex) and ephemeral HPKE public key (b64u); null when unsealed. */
  nonce: string | null;
  ceremonyPublicKey: string | null;
  /** When the shares submitted so far are discarded if nobody else submits; null with no progress. */
  ceremonyExpiresAt: string | null;
  /** Ed25519 signature by the node's identity over init id ‖ nonce ‖ ceremony key (docs/FORMATS.md §5.4). */
  ceremonySignature: string | null;
  /** The node's identity key, b64u; custodians check it against their share file, not against this. */
  nodePublicKey: string;
  initId: string | null;
  custodians: string[];
  submitted: string[];
  rootGeneration: number;
}

interface Ceremony {
  nonce: Uint8Array;
  publicKey: Uint8Array;
  privateKey: Secret;
  accepted: Map<string, SharePayload>;
  /** The node's signature over init id, nonce and ceremony key. */
  signature: Uint8Array;
  /** Discards the accepted shares when no custodian has acted for a while. */
  expiry: NodeJS.Timeout | null;
  expiresAt: number | null;
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
}

export type RootSource = "init" | "custodians" | "tpm-seal";

async function softwareRoot(rootKey: Secret): Promise<DisposableKeyHandle> {
  return new SoftwareKeyHandle(rootKey);
}

type Listener = (root: KeyHandle) => Promise<void> | void;

export class SealManager {
  #config: SealConfig | null;
  #root: DisposableKeyHandle | null = null;
  #ceremony: Ceremony | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #onUnseal: Listener[] = [];
  #onSeal: (() => void)[] = [];

  private constructor(
    private readonly store: Store,
    private readonly auditor: Auditor,
    config: SealConfig | null,
    private readonly ceremonyIdleMs: number,
    private readonly identity: NodeIdentity,
    private readonly protectRoot: (rootKey: Secret, source: RootSource) => Promise<DisposableKeyHandle>,
  ) {
    this.#config = config;
  }

  static async open(store: Store, auditor: Auditor, options: SealOptions = {}): Promise<SealManager> {
    const idle = options.ceremonyIdleMs ?? DEFAULT_CEREMONY_IDLE_MS;
    const identity = options.identity ?? NodeIdentity.generate();
    const protect = options.protectRoot ?? softwareRoot;
    return new SealManager(store, auditor, await store.getSealConfig(), idle, identity, protect);
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
    return {
      initialized: config !== null,
      sealed: this.sealed,
      threshold: config?.threshold ?? 0,
      shares: config?.shares ?? 0,
      progress: ceremony?.accepted.size ?? 0,
      nonce: ceremony ? hex.encode(ceremony.nonce) : null,
      ceremonyPublicKey: ceremony ? b64u.encode(ceremony.publicKey) : null,
      ceremonyExpiresAt: ceremony?.expiresAt ? new Date(ceremony.expiresAt).toISOString() : null,
      ceremonySignature: ceremony ? b64u.encode(ceremony.signature) : null,
      nodePublicKey: b64u.encode(this.identity.publicKey),
      initId: config?.initId ?? null,
      custodians: config?.custodians.map((c) => c.id) ?? [],
      submitted: ceremony ? [...ceremony.accepted.keys()] : [],
      rootGeneration: config?.rootGeneration ?? 0,
    };
  }

  /** The init ceremony. The node is unsealed afterwards. */
  init(threshold: number, custodians: CustodianInput[], requestId?: string): Promise<InitResult> {
    return this.#serially(() => this.#init(threshold, custodians, requestId));
  }

  async #init(threshold: number, custodians: CustodianInput[], requestId?: string): Promise<InitResult> {
    if (this.#config !== null) {
      throw new CustosError(409, "already_initialized", "custos is already initialised");
    }
    const { config, shareFiles, root, rootKey, auditKey, sealedSecrets } = await makeCustody(
      threshold,
      custodians,
      this.identity.publicKey,
    );
    root.dispose();
    const ids = custodians.map((c) => c.id);
    const initId = config.initId;
    try {
      const rootToken = newToken();
      const now = new Date().toISOString();
      await this.#initializeStore(config.initId, () =>
        this.store.initialize(
          config,
          sealedSecrets,
          {
            hash: hashToken(rootToken),
            principal: "root",
            roles: ["root"],
            createdBy: "init",
            createdAt: now,
            expiresAt: null,
          },
          this.auditor.event({
            principal: "anonymous",
            operation: "sys.init",
            decision: "allow",
            reason: `initialised ${threshold}-of-${custodians.length} with custodians ${ids.join(", ")}; init id ${initId}`,
            requestId,
          }),
        ),
      );
      this.#config = config;
      await this.#becomeUnsealed(await this.protectRoot(rootKey, "init"), auditKey);
      return { initId, threshold, shareFiles, rootToken };
    } catch (err) {
      rootKey.dispose();
      auditKey.dispose();
      throw err;
    }
  }

  /**
   * Makes the init durable. A store that fails with "outcome unknown" (its
   * writer died around the commit) may in fact have committed: then the shares
   * and root token about to be lost are the only ones that open this node, so
   * the store is asked which init it holds, and ours is answered as a success.
   */
  async #initializeStore(initId: string, write: () => Promise<void>): Promise<void> {
    try {
      await durably(write, "custos is already initialised");
    } catch (err) {
      if (!(err instanceof CustosError) || err.code !== "audit_unavailable") throw err;
      const stored = await this.store.getSealConfig().catch(() => null);
      if (stored?.initId !== initId) throw err;
    }
  }

  /** One custodian's share for the current unseal ceremony. */
  submit(submission: UnsealSubmission, requestId?: string): Promise<SealStatus> {
    return this.#serially(() => this.#submit(submission, requestId));
  }

  async #submit(sub: UnsealSubmission, requestId?: string): Promise<SealStatus> {
    const config = this.#config;
    if (config === null) {
      throw new CustosError(409, "not_initialized", "custos is not initialised: run custos operator init");
    }
    if (!this.sealed) throw new CustosError(409, "not_sealed", "custos is already unsealed");
    const ceremony = this.#currentCeremony();
    const custodian = sub.custodian;
    const refuse = async (reason: ShareRefusal): Promise<never> => {
      await this.auditor.record(
        this.auditor.event({
          principal: `custodian:${custodian}`,
          operation: "sys.unseal.submit",
          decision: "deny",
          reason,
          custodian,
          requestId,
        }),
      );
      throw new ShareRefusedError(custodian, reason);
    };

    if (sub.nonce !== hex.encode(ceremony.nonce)) return refuse("wrong_ceremony");
    const record = config.custodians.find((c) => c.id === custodian);
    if (record === undefined) return refuse("unknown_custodian");
    if (ceremony.accepted.has(custodian)) return refuse("duplicate_custodian");
    let payload: SharePayload;
    try {
      payload = await openUnsealSubmission(sub, ceremony.privateKey, ceremony.nonce);
    } catch {
      return refuse("undecryptable");
    }
    try {
      if (hex.encode(payload.initId) !== config.initId) return await refuse("wrong_init");
      const ok =
        payload.holder === custodian &&
        payload.index === record.index &&
        verifyShareCommitment(
          payload.initId,
          record.index,
          custodian,
          payload.share.reveal(),
          b64u.decode(record.commitment, "commitment"),
        );
      if (!ok) return await refuse("commitment_mismatch");
    } catch (err) {
      payload.share.dispose();
      throw err;
    }

    ceremony.accepted.set(custodian, payload);
    try {
      await this.auditor.record(
        this.auditor.event({
          principal: `custodian:${custodian}`,
          operation: "sys.unseal.submit",
          decision: "allow",
          reason: `share ${ceremony.accepted.size} of ${config.threshold} accepted`,
          custodian,
          requestId,
        }),
      );
    } catch (err) {
      ceremony.accepted.delete(custodian);
      payload.share.dispose();
      throw err;
    }
    if (ceremony.accepted.size >= config.threshold) await this.#complete(config, ceremony, requestId);
    else this.#armExpiry(ceremony);
    return this.status();
  }

  async #complete(config: SealConfig, ceremony: Ceremony, requestId?: string): Promise<void> {
    const custodians = [...ceremony.accepted.keys()];
    const shares = [...ceremony.accepted.values()].map((p) => p.share.reveal());
    let rk: Secret;
    try {
      rk = await combineShares(shares, b64u.decode(config.kcv, "kcv"));
    } catch (err) {
      this.#resetCeremony();
      if (!(err instanceof KeyCheckError)) throw err;
      await this.auditor.record(
        this.auditor.event({
          principal: "custos",
          operation: "sys.unseal",
          decision: "error",
          reason: `key check value mismatch with shares of ${custodians.join(", ")}`,
          requestId,
        }),
      );
      throw new ShareRefusedError(custodians.join(", "), "key_check_failed");
    }
    this.#resetCeremony();
    await this.#unsealWith(rk, "custodians", `unsealed by custodians ${custodians.join(", ")}`, requestId);
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
    if (this.#ceremony === null) {
      const { publicKey, privateKey } = generateX25519KeyPair();
      const nonce = randomBytes(16);
      const initId = hex.decode(this.#config?.initId ?? "", "initId");
      this.#ceremony = {
        nonce,
        publicKey,
        privateKey,
        signature: this.identity.signCeremony(initId, nonce, publicKey),
        accepted: new Map(),
        expiry: null,
        expiresAt: null,
      };
    }
    return this.#ceremony;
  }

  /** (Re)arms the idle timer after a custodian acted: shares never linger in memory unattended. */
  #armExpiry(ceremony: Ceremony): void {
    if (ceremony.expiry) clearTimeout(ceremony.expiry);
    ceremony.expiresAt = Date.now() + this.ceremonyIdleMs;
    ceremony.expiry = setTimeout(() => {
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
    }, this.ceremonyIdleMs);
    ceremony.expiry.unref();
  }

  #resetCeremony(): void {
    if (this.#ceremony === null) return;
    if (this.#ceremony.expiry) clearTimeout(this.#ceremony.expiry);
    for (const p of this.#ceremony.accepted.values()) p.share.dispose();
    this.#ceremony.privateKey.dispose();
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
