/**
 * The storage seam. Every method is asynchronous and speaks in domain terms,
 * never SQL, so that a PostgreSQL implementation can replace the embedded
 * SQLite one without touching callers. Writes that belong together are one
 * call (one transaction): a key and its first version, a new version and the
 * key's latest-version pointer, the seal configuration and the sealed system
 * secrets. Every state-changing call takes the audit event that records it and
 * makes both durable in the same transaction, so a change is never visible
 * without its audit record and vice versa.
 */
import type { AuditDecision, AuditEventInput, ChainedAuditEvent } from "../audit/event.js";
import type { GateRecord } from "../custody/tree.js";

export type KeyState = "enabled" | "disabled" | "pending-destruction" | "destroyed";
export type Protection = "software" | "tpm" | "threshold";

export interface CustodianRecord {
  id: string;
  /** 1-based share index. */
  index: number;
  /** X25519 public key, b64u. */
  publicKey: string;
  /** Share commitment, b64u. */
  commitment: string;
}

export interface SealConfig {
  /** 32 lowercase hex digits. */
  initId: string;
  threshold: number;
  shares: number;
  custodians: CustodianRecord[];
  /** Key check value of the root key, b64u. */
  kcv: string;
  rootGeneration: number;
  createdAt: string;
  /**
   * The custody tree (docs/FORMATS.md §5.5), absent for the flat k-of-N form
   * (which reads as one gate of `custodians`). With a tree, `threshold` and
   * `shares` describe its root gate and `custodians` lists its custodian leaves.
   */
  tree?: GateRecord;
}

export interface KeyRecord {
  name: string;
  protection: Protection;
  state: KeyState;
  latestVersion: number;
  minDecryptionVersion: number;
  /** Seconds; null when the key is not rotated automatically. */
  rotationPeriodSeconds: number | null;
  /** When destruction happens (RFC 3339), if scheduled. */
  deletionAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface KeyVersionRecord {
  name: string;
  version: number;
  state: "enabled" | "destroyed";
  /** Format-1 blob sealed under the root key (docs/FORMATS.md §4). Empty once destroyed. */
  sealedMaterial: Uint8Array;
  createdAt: string;
}

export interface TokenRecord {
  /** SHA-256 of the token, hex. */
  hash: string;
  principal: string;
  roles: string[];
  createdBy: string;
  createdAt: string;
  /** Null only for the root token of init (and the development root token). */
  expiresAt: string | null;
  /** When it last authenticated a request, to the minute (RFC 3339), or null. */
  lastUsedAt?: string | null;
  /** The policy grant it was minted under; null when minted without a policy (by the root token). */
  mintedUnder?: string | null;
}

/** A signed tree head of the audit log (docs/FORMATS.md §8.1). */
export interface TreeHeadRecord {
  /** Number of events (leaves) the head covers. */
  size: number;
  /** RFC 9162 Merkle tree head over the first `size` events. */
  root: Uint8Array;
  /** Milliseconds since the epoch. */
  timestamp: number;
  /** Ed25519 by the node's audit signing key. */
  signature: Uint8Array;
}

/**
 * A witness's countersignature on one of this node's heads (docs/FORMATS.md
 * §8.3), kept once verified against a configured witness key.
 */
export interface CosignatureRecord {
  /** The witness's name, from the node's configured key file (a label, not signed). */
  witness: string;
  /** Ed25519 public key of the witness. */
  witnessKey: Uint8Array;
  size: number;
  root: Uint8Array;
  /** The head's timestamp (ms). */
  timestamp: number;
  /** The witness's clock when it countersigned (ms). */
  cosignedAt: number;
  signature: Uint8Array;
}

/**
 * A break-glass use awaiting review: made when the policy allowed a request
 * only by break-glass, closed by a reviewer who is not the user.
 */
export interface ReviewRecord {
  /** Random identifier (UUID). */
  id: string;
  /** The request that used break-glass; its audit events carry the same id. */
  requestId: string;
  principal: string;
  organisation: string;
  /** The API operation, e.g. keys.decrypt. */
  operation: string;
  key: string | null;
  purpose: string;
  /** The policy rule that allowed the use. */
  rule: string;
  reason: string;
  /** Roles one of which the reviewer must hold. */
  reviewRoles: string[];
  createdAt: string;
  /** When the review is due (RFC 3339). */
  dueAt: string;
  closedBy: string | null;
  closedAt: string | null;
  /** The reviewer's finding. */
  note: string | null;
}

export interface ReviewClose {
  closedBy: string;
  closedAt: string;
  note: string;
}

/** An approval request's stored state; "approved" and "expired" are derived by the caller from the policy and the clock. */
export type ApprovalState = "pending" | "denied" | "executed";

/** One approval given to a request (four eyes): one per principal, never the requester. */
export interface ApprovalVote {
  /** The policy principal (the identity: the same for its tokens, JWTs and certificates). */
  principal: string;
  organisation: string;
  /** The roles the approver held when approving. */
  roles: string[];
  /** How the approver authenticated: token, jwt:<rule>, mtls:<rule>. */
  via: string;
  at: string;
  note: string | null;
}

/**
 * A request for an operation that the policy lets run only with approvals
 * (dynamic separation of duty): the exact parameters are bound by their
 * canonical JSON and its hash, and executing consumes the request once.
 */
export interface ApprovalRecord {
  /** Random identifier (UUID). */
  id: string;
  /** The policy operation: destroy, policy-change, … */
  operation: string;
  key: string | null;
  /** Canonical JSON (RFC 8785) of the bound parameters, operation and key included. */
  params: string;
  /** SHA-256 of `params`, hex. */
  paramsHash: string;
  purpose: string;
  requester: string;
  organisation: string;
  /** The policy's approval rule that governs the operation. */
  rule: string;
  required: number;
  /** The requester's justification. */
  reason: string | null;
  createdAt: string;
  expiresAt: string;
  state: ApprovalState;
  approvals: ApprovalVote[];
  /** Who denied the request (an eligible principal, never the requester). */
  deniedBy: string | null;
  deniedAt: string | null;
  note: string | null;
  executedBy: string | null;
  executedAt: string | null;
  executionRequestId: string | null;
}

export interface ApprovalDenial {
  by: string;
  at: string;
  note: string;
}

export interface ApprovalUse {
  /** Must be the requester. */
  by: string;
  at: string;
  /** Must equal the stored hash: the parameters executed are the parameters approved. */
  paramsHash: string;
  requestId: string;
}

export type KeyPatch = Partial<
  Pick<KeyRecord, "state" | "minDecryptionVersion" | "rotationPeriodSeconds" | "deletionAt">
>;

/** A record sealed under the root key: a key version's material or a system secret (docs/FORMATS.md §4). */
export interface SealedRecord {
  /** `key-material` (name, version) or `sys-secret` (name). */
  kind: "key-material" | "sys-secret";
  name: string;
  /** Key version; 0 for a system secret. */
  version: number;
  sealed: Uint8Array;
}

/**
 * The switch of a custody change (docs/FORMATS.md §5.9): the new seal
 * configuration and, for a root rotation, every sealed record re-sealed
 * under the new root with the exact blob it replaces. Applied in one
 * transaction, or not at all: the store refuses it (StoreConflictError) when
 * the stored init id is not `fromInitId`, or when the records it would
 * replace are not exactly those stored (the ring changed meanwhile).
 */
export interface CustodySwitch {
  fromInitId: string;
  config: SealConfig;
  /** Empty for a rekey (same root); for a rotation, every record the store holds. */
  resealed: (SealedRecord & { from: Uint8Array })[];
}

export interface AuditQuery {
  /** First seq to return (inclusive); default 1. */
  fromSeq?: number;
  /** At most this many; the store caps it at 1000. */
  limit?: number;
}

/** An audit query that also filters; each filter is served by an index. */
export interface AuditFilter extends AuditQuery {
  principal?: string;
  key?: string;
  operation?: string;
  purpose?: string;
  decision?: AuditDecision;
  /** Inclusive lower bound on `time` (RFC 3339 UTC with milliseconds, so strings order as times). */
  since?: string;
  /** Exclusive upper bound on `time`. */
  until?: string;
  /** Events whose context holds any of these keyed HMACs (as stored in `context`). */
  contextHmacs?: string[];
}

/** Raised for a write that conflicts with existing state (duplicate name, already initialised). */
export class StoreConflictError extends Error {
  override name = "StoreConflictError";
}

/** Raised when the store cannot make a write durable (disk full, read-only, down). */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
}

export interface Store {
  /** The seal configuration, or null before init. */
  getSealConfig(): Promise<SealConfig | null>;
  /**
   * Records the result of the init ceremony: seal configuration, sealed system
   * secrets, the root token. Fails with StoreConflictError if already initialised.
   */
  initialize(
    config: SealConfig,
    secrets: Record<string, Uint8Array>,
    rootToken: TokenRecord,
    event: AuditEventInput,
  ): Promise<void>;
  getSysSecret(name: string): Promise<Uint8Array | null>;
  /** Every record sealed under the root key (key versions not destroyed, system secrets). */
  getSealedRecords(): Promise<SealedRecord[]>;
  /**
   * Switches custody (rekey or root rotation) with its audit event in one
   * transaction; StoreConflictError when anything it replaces has changed.
   * Afterwards a sealed record of another root generation is refused.
   */
  switchCustody(change: CustodySwitch, event: AuditEventInput): Promise<void>;

  createKey(key: KeyRecord, first: KeyVersionRecord, event: AuditEventInput): Promise<void>;
  getKey(name: string): Promise<KeyRecord | null>;
  listKeys(): Promise<KeyRecord[]>;
  getKeyVersions(name: string): Promise<KeyVersionRecord[]>;
  /** Adds a version and moves `latestVersion` to it; fails with StoreConflictError if `version` is not latest+1. */
  addKeyVersion(version: KeyVersionRecord, updatedAt: string, event: AuditEventInput): Promise<void>;
  /**
   * Replaces the sealed material of an enabled version (a threshold key's
   * descriptor after a share refresh, docs/FORMATS.md §11.6); refused for a
   * destroyed version or one that does not exist.
   */
  replaceKeyMaterial(
    name: string,
    version: number,
    sealedMaterial: Uint8Array,
    updatedAt: string,
    event: AuditEventInput,
  ): Promise<void>;
  updateKey(name: string, patch: KeyPatch, updatedAt: string, event: AuditEventInput): Promise<void>;

  /**
   * Destroys a key: state `destroyed`, every version's sealed material erased
   * (and the storage's free pages overwritten where the engine can).
   */
  destroyKey(name: string, updatedAt: string, event: AuditEventInput): Promise<void>;

  putToken(token: TokenRecord, event: AuditEventInput): Promise<void>;
  getToken(hash: string): Promise<TokenRecord | null>;
  /** Every token, oldest first (at most 10,000). */
  listTokens(): Promise<TokenRecord[]>;
  /** Deletes a token; StoreConflictError when there is none with this hash. */
  revokeToken(hash: string, event: AuditEventInput): Promise<void>;
  /** Records a use (no audit event: the request is audited); never moves the last use back. */
  touchToken(hash: string, at: string): Promise<void>;

  /** Records a break-glass use awaiting review (StoreConflictError for a duplicate id). */
  putReview(review: ReviewRecord, event: AuditEventInput): Promise<void>;
  getReview(id: string): Promise<ReviewRecord | null>;
  /** Reviews in creation order; `open: true` only those not closed yet. At most 1000. */
  listReviews(filter?: { open?: boolean }): Promise<ReviewRecord[]>;
  /**
   * Closes an open review. StoreConflictError when there is no such review,
   * it is closed already, or the reviewer is the user whose use it records.
   */
  closeReview(id: string, close: ReviewClose, event: AuditEventInput): Promise<void>;

  /** Records an approval request (StoreConflictError for a duplicate id). */
  putApproval(approval: ApprovalRecord, event: AuditEventInput): Promise<void>;
  getApproval(id: string): Promise<ApprovalRecord | null>;
  /** Approval requests in creation order, optionally in one stored state. At most 1000. */
  listApprovals(filter?: { state?: ApprovalState }): Promise<ApprovalRecord[]>;
  /**
   * Adds an approval. StoreConflictError unless the request exists, is
   * pending and unexpired at `vote.at`, the approver is not the requester and
   * has not approved it already.
   */
  approveApproval(id: string, vote: ApprovalVote, event: AuditEventInput): Promise<void>;
  /** Ends a pending request as denied (StoreConflictError if not pending, or by the requester). */
  denyApproval(id: string, denial: ApprovalDenial, event: AuditEventInput): Promise<void>;
  /**
   * Consumes a pending request for execution, atomically: of two racing
   * calls exactly one succeeds. StoreConflictError unless it is pending,
   * unexpired at `use.at`, `use.by` is the requester and the hash matches.
   */
  consumeApproval(id: string, use: ApprovalUse, event: AuditEventInput): Promise<void>;

  /** Appends events that record no state change (key use, denials, ceremony steps). */
  appendAudit(events: AuditEventInput[]): Promise<void>;
  readAudit(query: AuditQuery): Promise<ChainedAuditEvent[]>;
  /** Events in seq order matching every given filter (each served by an index). */
  searchAudit(filter: AuditFilter): Promise<ChainedAuditEvent[]>;
  /** Number of events in the log (= the last seq). */
  auditSize(): Promise<number>;
  /** RFC 9162 leaf hashes of events `fromSeq`..`toSeq` (inclusive), in order. */
  readLeafHashes(fromSeq: number, toSeq: number): Promise<Uint8Array[]>;
  /**
   * Hashes of complete, aligned subtrees of the Merkle log, in the order
   * asked: (level, index) covers leaves [index·2^level, (index+1)·2^level),
   * level 0 being the leaf hash of event index + 1. At most 128 per call;
   * RangeError for a subtree the log does not (yet) hold.
   */
  readSubtreeHashes(refs: readonly { level: number; index: number }[]): Promise<Uint8Array[]>;
  /** Records a signed tree head; a second head for the same size is a StoreConflictError. */
  putTreeHead(head: TreeHeadRecord): Promise<void>;
  /** The largest head whose size is at most `size` (a witness's question, docs/FORMATS.md §8.3). */
  getTreeHeadAtMost(size: number): Promise<TreeHeadRecord | null>;
  /** The head of the given size, or the largest one when size is omitted. */
  getTreeHead(size?: number): Promise<TreeHeadRecord | null>;
  /**
   * Records a witness's countersignature on the stored head of the same size,
   * root and timestamp (StoreConflictError otherwise). One per witness and
   * size: a second one for the pair is ignored, the first is kept.
   */
  putCosignature(cosignature: CosignatureRecord): Promise<void>;
  /** The countersignatures on the head of `size`; without it, each witness's newest. */
  getCosignatures(size?: number): Promise<CosignatureRecord[]>;

  close(): Promise<void>;
}
