/**
 * Verified rekey and root rotation (docs/FORMATS.md §5.9). One change at a
 * time, on an unsealed node: it starts with a nonce and an ephemeral
 * ceremony key, signed by the node as a ceremony of the change's own kind
 * bound to the new tree's digest — never as an unseal's, so a share sent to
 * an unseal (or relayed from one) does not count here — the current quorum
 * submits its current shares sealed for that kind, and the
 * reconstructed root key — checked against the key check value — is split
 * over the new tree (a rekey: same root; a rotation: a new root, the key
 * ring to be re-sealed). Repositories and the TPM leaf are written and read
 * back; the ceremony is signed again as the change's confirmation (bound to
 * the new init id too), and each custodian confirms by opening their new
 * share file and sending the share back sealed for it, checked against its
 * commitment.
 * Only when every new leaf is confirmed does the node switch, in one store
 * transaction (seal.ts `switchCustody`): until then the old custody is the
 * only one, before a restart and after. A restart, a seal, a cancel or the
 * idle timer discards the pending change; at start an unfinished change
 * found in the audit log is recorded as abandoned, naming the custody that
 * stays. Every step is audited. (One state machine, so one file of ~460
 * lines: its checks live in change-checks.ts, its new shares in
 * change-shares.ts, its view in change-status.ts, the re-sealing in
 * root-reseal.ts.)
 */
import type { Auditor } from "../audit/auditor.js";
import { hex } from "../crypto/bytes.js";
import { SoftwareKeyHandle } from "../crypto/key-handle.js";
import { Secret } from "../crypto/secret.js";
import { CustosError } from "../errors.js";
import type { SealConfig, Store } from "../store/store.js";
import { Ceremony } from "./ceremony.js";
import { confirmKindOf } from "./ceremony-kind.js";
import {
  checkConfirmation,
  checkCurrentShare,
  combineQuorum,
  lastEvent,
  parseChangeTree,
  pathsOf,
} from "./change-checks.js";
import {
  custodianLeaves,
  initIdBytes,
  makeChangeShares,
  treeInputOf,
  voidNodeShares,
} from "./change-shares.js";
import {
  type Change,
  type ChangeKind,
  type ChangeStatus,
  changeStatus,
  type Pending,
} from "./change-status.js";

import { crashPoint } from "./crash-point.js";
import type { UnsealSubmission } from "./flat-submission.js";
import type { NodeIdentity } from "./node-identity.js";
import { isNodeHeld, type NodeShares } from "./node-shares.js";
import { type ShareRefusal, ShareRefusedError } from "./refusal.js";
import { resealAll } from "./root-reseal.js";
import type { SealManager } from "./seal.js";
import { leaves, treeOf } from "./tree.js";
import { changeBinding, treeDigest } from "./tree-digest.js";
import { TREE_UNSEAL_FORMAT, type TreeUnsealSubmission } from "./tree-share-format.js";
import { treeSatisfied } from "./tree-unseal.js";

export type { ChangeKind, ChangeStatus } from "./change-status.js";

export const DEFAULT_CHANGE_IDLE_MS = 60 * 60_000;
const OP = "sys.rekey";

export class CustodyChanger {
  #change: Change | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly auditor: Auditor,
    private readonly seal: SealManager,
    private readonly identity: NodeIdentity,
    private readonly nodeShares: NodeShares | null,
    private readonly idleMs = DEFAULT_CHANGE_IDLE_MS,
  ) {
    seal.onSeal(() => {
      // A switch cycles the listeners without sealing; only a real seal discards the change.
      queueMicrotask(() => {
        if (this.seal.sealed && this.#change) {
          // Shutdown seals too, and the store may be closing: the discard stands either way.
          this.#serially(() => this.#discard("custos", "the node was sealed")).catch(() => {});
        }
      });
    });
  }

  /** At start: an unfinished change in the audit log is recorded as abandoned, naming the custody that stays. */
  async recordAbandoned(): Promise<string | null> {
    const config = await this.store.getSealConfig();
    if (config === null) return null;
    const last = await lastEvent(this.store, `${OP}.start`);
    if (last === null) return null;
    const ends = await Promise.all(
      ["switch", "cancel", "abandon"].map((op) =>
        this.store.searchAudit({ operation: `${OP}.${op}`, fromSeq: last.seq, limit: 1 }),
      ),
    );
    if (ends.some((e) => e.length > 0)) return null;
    const what = (last.reason ?? "").split(":")[0] ?? "change";
    const reason = `${what}: not switched before the restart; abandoned, its new shares are void; active custody: init id ${config.initId}, root generation ${config.rootGeneration}`;
    await this.auditor.record(
      this.auditor.event({ principal: "custos", operation: `${OP}.abandon`, decision: "allow", reason }),
    );
    return reason;
  }

  status(): ChangeStatus {
    return changeStatus(this.#change, this.seal.config);
  }

  /** Starts a rekey (a new tree is required) or a root rotation (the current tree unless one is given). */
  start(kind: ChangeKind, tree: unknown, principal: string, requestId?: string): Promise<ChangeStatus> {
    return this.#serially(async () => {
      const config = this.seal.config;
      this.seal.root(); // 503 sealed / not initialised
      if (config === null) throw new CustosError(503, "not_initialized", "custos is not initialised");
      if (this.#change) {
        throw new CustosError(
          409,
          "change_in_progress",
          `a ${this.#change.kind} is in progress; cancel it first (custos operator rekey cancel)`,
        );
      }
      const input = parseChangeTree(kind, tree, this.nodeShares) ?? treeInputOf(treeOf(config));
      const digest = treeDigest(input);
      const ceremony = new Ceremony(this.identity, config.initId, kind, changeBinding(digest));
      const nonce = hex.encode(ceremony.nonce);
      await this.auditor
        .record(
          this.auditor.event({
            principal,
            operation: `${OP}.start`,
            decision: "allow",
            reason: `${kind} ${nonce}: started from init id ${config.initId}, root generation ${config.rootGeneration}; new tree digest ${hex.encode(digest)}`,
            requestId,
          }),
        )
        .catch((err: unknown) => {
          ceremony.dispose();
          throw err;
        });
      this.#change = { kind, tree: input, digest, ceremony, pending: null };
      this.#arm();
      crashPoint("change.started");
      return this.status();
    });
  }

  /** A custodian's current share (custos-unseal/v3 or v4 of the change's kind, sealed to its ceremony key). */
  submit(sub: UnsealSubmission | TreeUnsealSubmission, requestId?: string): Promise<ChangeStatus> {
    return this.#serially(async () => {
      const c = this.#active();
      const config = this.seal.config as SealConfig;
      if (c.pending) {
        const who = sub.format === TREE_UNSEAL_FORMAT ? sub.path : sub.custodian;
        return this.#refuse(
          c,
          who,
          "wrong_ceremony",
          requestId,
          "the quorum is complete; confirm the new shares",
        );
      }
      const checked = await checkCurrentShare(config, c.ceremony, sub);
      if (!checked.ok) return this.#refuse(c, checked.who, checked.reason, requestId, checked.why);
      c.ceremony.accepted.set(checked.key, checked.value);
      try {
        await this.#audit(
          c,
          "submit",
          `current share of ${checked.key} accepted`,
          requestId,
          "allow",
          holderOf(checked.key),
        );
      } catch (err) {
        c.ceremony.accepted.delete(checked.key);
        checked.value.dispose();
        throw err;
      }
      this.#arm();
      if (treeSatisfied(treeOf(config), pathsOf(config, c.ceremony)))
        await this.#quorum(c, config, requestId);
      return this.status();
    });
  }

  /** A custodian's new share, opened from their new share file and sealed back to the ceremony key. */
  confirm(sub: TreeUnsealSubmission, requestId?: string): Promise<ChangeStatus> {
    return this.#serially(async () => {
      const c = this.#active();
      const pending = c.pending;
      if (!pending)
        return this.#refuse(c, sub.path, "wrong_ceremony", requestId, "the quorum is not complete yet");
      const checked = await checkConfirmation(pending.config, c.ceremony, sub);
      if (!checked.ok) return this.#refuse(c, sub.path, checked.reason, requestId, checked.why);
      pending.confirmed.add(sub.path);
      await this.#audit(
        c,
        "confirm",
        `new share at ${sub.path} confirmed by its custodian`,
        requestId,
        "allow",
        holderOf(sub.path),
      );
      this.#arm();
      await this.#switchIfConfirmed(c, requestId);
      return this.status();
    });
  }

  cancel(principal: string, requestId?: string): Promise<ChangeStatus> {
    return this.#serially(async () => {
      if (!this.#change) throw new CustosError(409, "no_change", "no rekey or root rotation is in progress");
      await this.#discard(principal, "cancelled", requestId);
      return this.status();
    });
  }

  async #quorum(c: Change, config: SealConfig, requestId?: string): Promise<void> {
    const holders = [...c.ceremony.accepted.keys()];
    let rk: Secret;
    try {
      rk = await combineQuorum(config, c.ceremony);
    } catch {
      await this.#discard(
        "custos",
        `the shares of ${holders.join(", ")} failed the key check value`,
        requestId,
        "error",
      );
      throw new ShareRefusedError(holders.join(", "), "key_check_failed");
    }
    for (const s of c.ceremony.accepted.values()) s.dispose();
    c.ceremony.accepted.clear();
    crashPoint("change.quorum");
    try {
      const made = await makeChangeShares(
        c.kind,
        config,
        c.tree,
        rk,
        this.identity.publicKey,
        this.nodeShares,
      );
      c.pending = {
        config: made.config,
        shareFiles: made.shareFiles,
        confirmed: new Set(made.nodeConfirmed),
        nodeLeaves: made.nodeLeaves,
        newRootKey: made.newRootKey,
      };
      c.ceremony.advance(confirmKindOf(c.kind), changeBinding(c.digest, initIdBytes(made.config)));
    } catch (err) {
      await this.#discard(
        "custos",
        `new shares could not be made: ${(err as Error).message}`,
        requestId,
        "error",
      );
      throw err;
    } finally {
      rk.dispose();
    }
    const p = c.pending;
    await this.#audit(
      c,
      "shares",
      `quorum of ${holders.join(", ")} met; new shares under init id ${p.config.initId} (root generation ${p.config.rootGeneration})` +
        `${p.confirmed.size ? `; read back and confirmed: ${[...p.confirmed].join(", ")}` : ""}; awaiting confirmation by ${
          custodianLeaves(p.config)
            .map((l) => l.path)
            .join(", ") || "nobody"
        }`,
      requestId,
    );
    crashPoint("change.shares-stored");
    await this.#switchIfConfirmed(c, requestId);
  }

  async #switchIfConfirmed(c: Change, requestId?: string): Promise<void> {
    const p = c.pending as Pending;
    if (custodianLeaves(p.config).some((l) => !p.confirmed.has(l.path))) return;
    crashPoint("change.confirmed");
    const from = this.seal.config as SealConfig;
    const nonce = hex.encode(c.ceremony.nonce);
    const newRootKey = p.newRootKey;
    p.newRootKey = null;
    const prepare = async (root: Parameters<typeof resealAll>[1]) => {
      if (newRootKey === null) return { fromInitId: from.initId, config: p.config, resealed: [] };
      const handle = new SoftwareKeyHandle(Secret.of(newRootKey.reveal().slice()));
      try {
        const resealed = await resealAll(this.store, root, handle, p.config.rootGeneration);
        return { fromInitId: from.initId, config: p.config, resealed };
      } finally {
        handle.dispose();
      }
    };
    const event = () =>
      this.auditor.event({
        principal: "custos",
        operation: `${OP}.switch`,
        decision: "allow",
        reason: `${c.kind} ${nonce}: switched from init id ${from.initId} (root generation ${from.rootGeneration}) to init id ${p.config.initId} (root generation ${p.config.rootGeneration}); the old shares are void`,
        requestId,
      });
    try {
      await this.seal.switchCustody(prepare, event, newRootKey);
    } catch (err) {
      const switched = this.seal.config?.initId === p.config.initId;
      this.#clear();
      if (!switched) {
        await this.#audit(
          c,
          "cancel",
          `switch failed, the current custody stays: ${(err as Error).message}${await this.#voidNodeShares(p)}`,
          requestId,
          "error",
        ).catch(() => {});
      }
      throw err;
    }
    this.#clear();
    await this.#voidOldNodeShares(c, from, requestId);
  }

  /**
   * After the switch: the old custody's repository and TPM shares are
   * overwritten. A rekey keeps the root, so they are still shares of it; a
   * repository taken out of the tree must not keep a usable one.
   */
  async #voidOldNodeShares(c: Change, from: SealConfig, requestId?: string): Promise<void> {
    const old = leaves(treeOf(from)).filter(isNodeHeld);
    if (old.length === 0) return;
    const failed = await voidNodeShares(this.nodeShares, from.initId, old);
    await this.#audit(
      c,
      "cleanup",
      failed
        ? `the old custody's node-held shares could not all be overwritten: ${failed}`
        : `the old custody's node-held shares (${old.map((l) => l.path).join(", ")}) were overwritten`,
      requestId,
      failed ? "error" : "allow",
    ).catch(() => {}); // the switch stands; the operator log has the store's error
  }

  #active(): Change {
    if (!this.#change)
      throw new CustosError(
        409,
        "no_change",
        "no rekey or root rotation is in progress (custos operator rekey start)",
      );
    return this.#change;
  }

  async #refuse(
    c: Change,
    who: string,
    reason: ShareRefusal,
    requestId?: string,
    why?: string,
  ): Promise<never> {
    const custodian = holderOf(who);
    await this.#audit(
      c,
      "submit",
      `${who}: ${reason}${why ? ` (${why})` : ""}`,
      requestId,
      "deny",
      custodian,
    );
    throw new ShareRefusedError(custodian, reason, who.startsWith("root") ? who : undefined, why);
  }

  #audit(
    c: Change,
    step: string,
    what: string,
    requestId?: string,
    decision: "allow" | "deny" | "error" = "allow",
    custodian?: string,
  ) {
    const nonce = hex.encode(c.ceremony.nonce);
    return this.auditor.record(
      this.auditor.event({
        principal: custodian ? `custodian:${custodian}` : "custos",
        ...(custodian ? { custodian } : {}),
        operation: `${OP}.${step}`,
        decision,
        reason: `${c.kind} ${nonce}: ${what}`,
        requestId,
      }),
    );
  }

  async #discard(
    principal: string,
    why: string,
    requestId?: string,
    decision: "allow" | "error" = "allow",
  ): Promise<void> {
    const c = this.#change;
    if (!c) return;
    this.#clear();
    const nonce = hex.encode(c.ceremony.nonce);
    const voided = await this.#voidNodeShares(c.pending);
    await this.auditor.record(
      this.auditor.event({
        principal,
        operation: `${OP}.cancel`,
        decision,
        reason: `${c.kind} ${nonce}: ${why}; the pending custody is discarded, the current one stays${voided}`,
        requestId,
      }),
    );
  }

  /** For the audit: "" without node-held leaves, else whether their new shares were overwritten. */
  async #voidNodeShares(pending: Pending | null): Promise<string> {
    if (!pending || pending.nodeLeaves.length === 0) return "";
    const failed = await voidNodeShares(this.nodeShares, pending.config.initId, pending.nodeLeaves);
    return failed
      ? `; the new node-held shares could not all be overwritten: ${failed}`
      : "; the new node-held shares were overwritten";
  }

  #clear(): void {
    const c = this.#change;
    this.#change = null;
    c?.ceremony.dispose();
    c?.pending?.newRootKey?.dispose();
  }

  #arm(): void {
    const c = this.#change;
    c?.ceremony.arm(this.idleMs, () => {
      void this.#serially(async () => {
        if (this.#change === c)
          await this.#discard("custos", `expired after ${Math.round(this.idleMs / 1000)} s without a step`);
      }).catch(() => {});
    });
  }

  #serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

/** The custodian a leaf path or flat custodian id names: `root/1/custodian:alice` → `alice`. */
function holderOf(who: string): string {
  return who.includes(":") ? who.slice(who.lastIndexOf(":") + 1) : who;
}
