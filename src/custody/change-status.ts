/**
 * What a custody change is while it runs (docs/FORMATS.md §5.9) and what
 * `GET /v1/sys/rekey` shows of it: the kind, the new tree and its digest,
 * the ceremony (kind, nonce, key, signature, accepted current shares), and
 * once the quorum is in, the pending custody with its share files and the
 * leaves confirmed so far. Public by design:
 * nothing here is secret but the ceremony's private key and the accepted
 * shares, which the view never shows.
 */
import { b64u, hex } from "../crypto/bytes.js";
import type { Secret } from "../crypto/secret.js";
import type { SealConfig } from "../store/store.js";
import type { Ceremony } from "./ceremony.js";
import type { CeremonyKind, ChangeKind } from "./ceremony-kind.js";
import { pathsOf } from "./change-checks.js";
import { custodianLeaves } from "./change-shares.js";
import { type GateStatus, gateStatus, type Leaf, type TreeInput, treeOf } from "./tree.js";
import type { TreeShareFile } from "./tree-share-format.js";

export type { ChangeKind } from "./ceremony-kind.js";

export interface ChangeStatus {
  active: boolean;
  kind: ChangeKind | null;
  /** "quorum": current shares wanted; "confirming": new shares out, confirmations wanted. */
  phase: "quorum" | "confirming" | null;
  /** The ceremony's kind: the change's kind during the quorum, `<kind>-confirm` after (docs/FORMATS.md §5.4). */
  ceremonyKind: CeremonyKind | null;
  /** The tree the root key is (to be) split over, as the node parsed it; its digest is signed with the ceremony. */
  newTree: TreeInput | null;
  /** H("custos/tree-digest/v1" ‖ JCS(newTree)), hex (§5.9). */
  treeDigest: string | null;
  nonce: string | null;
  ceremonyPublicKey: string | null;
  ceremonySignature: string | null;
  expiresAt: string | null;
  initId: string | null;
  rootGeneration: number;
  /** The current tree with the quorum's progress. */
  quorum: GateStatus | null;
  submitted: string[];
  newInitId: string | null;
  newRootGeneration: number | null;
  /** The custodians' new share files (each HPKE-sealed to its custodian). */
  shareFiles: TreeShareFile[];
  confirmed: string[];
  unconfirmed: string[];
}

export interface Pending {
  config: SealConfig;
  shareFiles: TreeShareFile[];
  confirmed: Set<string>;
  /** Repositories and TPM leaf written under the new init id. */
  nodeLeaves: Leaf[];
  newRootKey: Secret | null;
}

export interface Change {
  kind: ChangeKind;
  /** The new tree: the one given at start, or the current tree for a rotation without one. */
  tree: TreeInput;
  digest: Uint8Array;
  ceremony: Ceremony;
  pending: Pending | null;
}

/** The public view of the change in progress (or of none). */
export function changeStatus(c: Change | null, config: SealConfig | null): ChangeStatus {
  const pending = c?.pending ?? null;
  const unconfirmed = pending
    ? custodianLeaves(pending.config).filter((l) => !pending.confirmed.has(l.path))
    : [];
  return {
    active: c !== null,
    kind: c?.kind ?? null,
    phase: c === null ? null : pending ? "confirming" : "quorum",
    ceremonyKind: c?.ceremony.kind ?? null,
    newTree: c?.tree ?? null,
    treeDigest: c ? hex.encode(c.digest) : null,
    nonce: c ? hex.encode(c.ceremony.nonce) : null,
    ceremonyPublicKey: c ? b64u.encode(c.ceremony.publicKey) : null,
    ceremonySignature: c ? b64u.encode(c.ceremony.signature) : null,
    expiresAt: c?.ceremony.expiresAt ? new Date(c.ceremony.expiresAt).toISOString() : null,
    initId: config?.initId ?? null,
    rootGeneration: config?.rootGeneration ?? 0,
    quorum: c && config && !pending ? gateStatus(treeOf(config), new Set(pathsOf(config, c.ceremony))) : null,
    submitted: c ? [...c.ceremony.accepted.keys()] : [],
    newInitId: pending?.config.initId ?? null,
    newRootGeneration: pending?.config.rootGeneration ?? null,
    shareFiles: pending?.shareFiles ?? [],
    confirmed: pending ? [...pending.confirmed] : [],
    unconfirmed: unconfirmed.map((l) => l.path),
  };
}
