/**
 * The Merkle log over the audit events, as the node runs it: a compact range
 * (the roots of the perfect subtrees covering the log, left to right) that
 * advances over committed events, and a signer that issues a signed tree head
 * at most once a second while new events arrive (and at unseal). The audit
 * signing key is sealed under the root key like any other key and exists only
 * while the node is unsealed; heads are therefore signed only while
 * unsealed, and events logged while sealed (ceremony steps) are covered by the
 * first head after unseal. Roots and proofs come from the store's subtree
 * hashes (merkle-subtrees.ts): O(log n) reads each, so no request loads the
 * log's leaves. Only the first catch-up after a restart reads every leaf, in
 * pages through a compact range (bounded memory), to check that the stored
 * events still give the newest signed head.
 */

import { unwrap } from "../crypto/envelope.js";
import type { KeyHandle } from "../crypto/key-handle.js";
import { Secret } from "../crypto/secret.js";
import type { Store, TreeHeadRecord } from "../store/store.js";
import { type Hash, nodeHash, treeHead } from "./merkle.js";
import {
  consistencyProofFrom,
  inclusionProofFrom,
  type SubtreeReader,
  treeHeadFrom,
} from "./merkle-subtrees.js";
import { auditPublicKey, signTreeHead } from "./tree-head.js";

export const AUDIT_SIGNING_KEY = "audit-signing-key";
export const AUDIT_SIGNING_KEY_CONTEXT = { "custos.record": "audit-signing-key" };
const SIGN_INTERVAL_MS = 1000;
/** Leaves per read when the first catch-up after a restart re-checks the whole log. */
const CATCH_UP_PAGE = 65_536;

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
  /** The size of the newest head this process signed or checked against the stored events. */
  #size = 0;
  readonly #read: SubtreeReader = (refs) => this.store.readSubtreeHashes(refs);
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
    if (size <= this.#size) return null;
    const last = await this.store.getTreeHead();
    if (last !== null && last.size > this.#size) {
      // First catch up with the newest signed head (after a restart), which
      // the stored events must still match: their leaves, and the subtrees
      // that roots and proofs are served from.
      if (last.size > size) {
        throw new Error(
          `the signed head covers ${last.size} events but the log holds ${size}: events were removed`,
        );
      }
      const fromLeaves = await this.#rootOfLeaves(last.size);
      const fromSubtrees = await treeHeadFrom(this.#read, last.size);
      if (Buffer.compare(fromLeaves, last.root) !== 0 || Buffer.compare(fromSubtrees, last.root) !== 0) {
        throw new Error(
          `the signed head for size ${last.size} does not match the stored events: the log was altered`,
        );
      }
      this.#size = last.size;
    }
    if (size === this.#size) return null;
    const root = await treeHeadFrom(this.#read, size);
    const timestamp = Math.max(this.now(), last ? last.timestamp : 0);
    const head = signTreeHead(key, size, timestamp, root);
    await this.store.putTreeHead(head);
    this.#size = size;
    return head;
  }

  /** MTH of the first `size` stored leaves, read a page at a time. */
  async #rootOfLeaves(size: number): Promise<Hash> {
    const range = new CompactRange();
    for (let from = 1; from <= size; from += CATCH_UP_PAGE) {
      const to = Math.min(size, from + CATCH_UP_PAGE - 1);
      for (const leaf of await this.store.readLeafHashes(from, to)) range.append(leaf);
    }
    return range.root();
  }

  /** The leaf hash of event `index + 1` and its RFC 9162 inclusion proof in the tree of `size` events. */
  inclusionProof(index: number, size: number): Promise<{ leaf: Hash; proof: Hash[] }> {
    return inclusionProofFrom(this.#read, index, size);
  }

  /** The RFC 9162 consistency proof between the trees of `from` and `to` events. */
  consistencyProof(from: number, to: number): Promise<Hash[]> {
    return consistencyProofFrom(this.#read, from, to);
  }
}
