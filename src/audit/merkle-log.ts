/**
 * The Merkle log over the audit events, as the node runs it: a compact range
 * (the roots of the perfect subtrees covering the log, left to right) that
 * advances over committed events, and a signer that issues a signed tree head
 * at most once a second while new events arrive (and at unseal). The audit
 * signing key is sealed under the root key like any other key and exists only
 * while the node is unsealed; heads are therefore signed only while
 * unsealed, and events logged while sealed (ceremony steps) are covered by the
 * first head after unseal. Proofs are computed from the stored leaf hashes
 * (O(n) per proof, memoised within it).
 */

import { unwrap } from "../crypto/envelope.js";
import type { KeyHandle } from "../crypto/key-handle.js";
import { Secret } from "../crypto/secret.js";
import type { Store, TreeHeadRecord } from "../store/store.js";
import { consistencyProof, type Hash, inclusionProof, nodeHash, treeHead } from "./merkle.js";
import { auditPublicKey, signTreeHead } from "./tree-head.js";

export const AUDIT_SIGNING_KEY = "audit-signing-key";
export const AUDIT_SIGNING_KEY_CONTEXT = { "custos.record": "audit-signing-key" };
const SIGN_INTERVAL_MS = 1000;

/** Roots of perfect subtrees, largest first; their right fold is the RFC 9162 tree head. */
export class CompactRange {
  #stack: { size: number; hash: Hash }[] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  append(leaf: Hash): void {
    this.#size++;
    // The low set bits of the new size say how many perfect subtrees the new
    // leaf completes: merge that many times, like carrying in binary addition.
    let hash = leaf;
    let size = 1;
    for (let n = this.#size; n % 2 === 0; n /= 2) {
      const left = this.#stack.pop()!;
      hash = nodeHash(left.hash, hash);
      size *= 2;
    }
    this.#stack.push({ size, hash });
  }

  clone(): CompactRange {
    const copy = new CompactRange();
    copy.#stack = this.#stack.map((e) => ({ ...e }));
    copy.#size = this.#size;
    return copy;
  }

  root(): Hash {
    if (this.#stack.length === 0) return treeHead([]);
    let r = this.#stack[this.#stack.length - 1]!.hash;
    for (let i = this.#stack.length - 2; i >= 0; i--) r = nodeHash(this.#stack[i]!.hash, r);
    return r;
  }
}

export class MerkleLog {
  #range = new CompactRange();
  #key: Secret | null = null;
  #publicKey: Uint8Array | null = null;
  #timer: NodeJS.Timeout | null = null;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly onError: (err: unknown) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** The public half of the audit signing key, once known (after the first unseal of this process). */
  get publicKey(): Uint8Array | null {
    return this.#publicKey;
  }

  /** Loads the signing key with the root key and starts signing (the first head right away). */
  async start(root: KeyHandle): Promise<void> {
    const sealed = await this.store.getSysSecret(AUDIT_SIGNING_KEY);
    if (sealed === null) throw new Error("the audit signing key is missing from the store");
    const key = Secret.of(await unwrap(root, sealed, AUDIT_SIGNING_KEY_CONTEXT));
    this.#key?.dispose();
    this.#key = key;
    this.#publicKey = auditPublicKey(key);
    this.#timer ??= setInterval(() => {
      this.signPending().catch(this.onError);
    }, SIGN_INTERVAL_MS);
    this.#timer.unref();
    // Not awaited: a store that cannot take a head now must not fail the unseal.
    this.signPending().catch(this.onError);
  }

  /** Forgets the signing key (seal, shutdown); heads stay readable. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#key?.dispose();
    this.#key = null;
  }

  /**
   * Signs a head over every event committed before the call, if there are new
   * ones, and returns it (or null). Calls run one after another.
   */
  signPending(): Promise<TreeHeadRecord | null> {
    const run = this.#tail.then(
      () => this.#signPending(),
      () => this.#signPending(),
    );
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #signPending(): Promise<TreeHeadRecord | null> {
    const key = this.#key;
    if (key === null) return null;
    const size = await this.store.auditSize();
    if (size <= this.#range.size) return null;
    // Advance a copy: the range moves on only over events that checked out.
    const range = this.#range.clone();
    const last = await this.store.getTreeHead();
    if (last !== null && last.size > range.size) {
      // First catch up with the newest signed head (after a restart), which
      // the stored events must still match.
      if (last.size > size) {
        throw new Error(
          `the signed head covers ${last.size} events but the log holds ${size}: events were removed`,
        );
      }
      for (const leaf of await this.store.readLeafHashes(range.size + 1, last.size)) range.append(leaf);
      if (Buffer.compare(range.root(), last.root) !== 0) {
        throw new Error(
          `the signed head for size ${last.size} does not match the stored events: the log was altered`,
        );
      }
      this.#range = range.clone();
    }
    if (size === range.size) return null;
    for (const leaf of await this.store.readLeafHashes(range.size + 1, size)) range.append(leaf);
    const timestamp = Math.max(this.now(), last ? last.timestamp : 0);
    const head = signTreeHead(key, size, timestamp, range.root());
    await this.store.putTreeHead(head);
    this.#range = range;
    return head;
  }

  async inclusionProof(index: number, size: number): Promise<{ leaf: Hash; proof: Hash[] }> {
    const leaves = await this.store.readLeafHashes(1, size);
    return { leaf: leaves[index]!, proof: inclusionProof(leaves, index, size) };
  }

  async consistencyProof(from: number, to: number): Promise<Hash[]> {
    const leaves = await this.store.readLeafHashes(1, to);
    return consistencyProof(leaves, from, to);
  }
}
