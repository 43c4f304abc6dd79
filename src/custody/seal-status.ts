/**
 * What `GET /v1/sys/seal-status` says: the seal state, the current unseal
 * ceremony's nonce, key and signature, and the custody tree with, at each
 * gate, what is still missing (a flat k-of-N reads as one gate of
 * custodians). Built from the seal's state; nothing secret goes in.
 */
import { b64u, hex } from "../crypto/bytes.js";
import type { SealConfig } from "../store/store.js";
import type { Ceremony } from "./ceremony.js";
import { type GateStatus, gateStatus, leaves, treeOf } from "./tree.js";

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
  /** Ed25519 signature by the node's identity over kind "unseal", init id, nonce and ceremony key (docs/FORMATS.md §5.4). */
  ceremonySignature: string | null;
  /** The node's identity key, b64u; custodians check it against their share file, not against this. */
  nodePublicKey: string;
  initId: string | null;
  custodians: string[];
  submitted: string[];
  rootGeneration: number;
  /** The custody tree (a flat k-of-N reads as one gate), with what each gate still misses; null before init. */
  tree: GateStatus | null;
}

export function sealStatus(
  config: SealConfig | null,
  ceremony: Ceremony | null,
  sealed: boolean,
  nodePublicKey: Uint8Array,
): SealStatus {
  const accepted = ceremony ? [...ceremony.accepted.keys()] : [];
  return {
    initialized: config !== null,
    sealed,
    threshold: config?.threshold ?? 0,
    shares: config?.shares ?? 0,
    progress: accepted.length,
    nonce: ceremony ? hex.encode(ceremony.nonce) : null,
    ceremonyPublicKey: ceremony ? b64u.encode(ceremony.publicKey) : null,
    ceremonyExpiresAt: ceremony?.expiresAt ? new Date(ceremony.expiresAt).toISOString() : null,
    ceremonySignature: ceremony ? b64u.encode(ceremony.signature) : null,
    nodePublicKey: b64u.encode(nodePublicKey),
    initId: config?.initId ?? null,
    custodians: config?.custodians.map((c) => c.id) ?? [],
    // Custodian ids (flat) or, for a tree, the custodian ids among the accepted leaves.
    submitted: config?.tree
      ? accepted.filter((p) => p.includes("/custodian:")).map((p) => p.slice(p.indexOf("/custodian:") + 11))
      : accepted,
    rootGeneration: config?.rootGeneration ?? 0,
    tree: config ? treeStatus(config, accepted, sealed) : null,
  };
}

function treeStatus(config: SealConfig, accepted: string[], sealed: boolean): GateStatus {
  const tree = treeOf(config);
  const present = config.tree ? accepted : accepted.map((id) => `root/custodian:${id}`);
  // Unsealed, what unsealed it is no longer kept: every leaf reads as present, no gate as short.
  return gateStatus(tree, new Set(sealed ? present : leaves(tree).map((l) => l.path)));
}
