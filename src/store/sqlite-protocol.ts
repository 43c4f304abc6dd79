/**
 * The messages between the SQLite store on the main thread and its writer
 * thread. A write is described as data — one `WriteOp` plus the audit events
 * that record it — rather than as a function, because only structured-clone
 * values can cross a `worker_threads` boundary, and because a closed set of
 * operations is what lets the writer run each unit inside its own savepoint
 * and answer "conflict" for one caller without failing its batch neighbours.
 */
import type { AuditEventInput } from "../audit/event.js";
import type {
  ApprovalDenial,
  ApprovalRecord,
  ApprovalUse,
  ApprovalVote,
  CosignatureRecord,
  CustodySwitch,
  KeyPatch,
  KeyRecord,
  KeyVersionRecord,
  ReviewClose,
  ReviewRecord,
  SealConfig,
  TokenRecord,
  TreeHeadRecord,
} from "./store.js";

export type WriteOp =
  | { op: "initialize"; config: SealConfig; secrets: Record<string, Uint8Array>; rootToken: TokenRecord }
  | { op: "createKey"; key: KeyRecord; first: KeyVersionRecord }
  | { op: "addKeyVersion"; version: KeyVersionRecord; updatedAt: string }
  | { op: "replaceKeyMaterial"; name: string; version: number; sealedMaterial: Uint8Array; updatedAt: string }
  | { op: "updateKey"; name: string; patch: KeyPatch; updatedAt: string }
  | { op: "destroyKey"; name: string; updatedAt: string }
  | { op: "putToken"; token: TokenRecord }
  | { op: "revokeToken"; hash: string }
  | { op: "touchToken"; hash: string; at: string }
  | { op: "putReview"; review: ReviewRecord }
  | { op: "closeReview"; id: string; close: ReviewClose }
  | { op: "putApproval"; approval: ApprovalRecord }
  | { op: "approveApproval"; id: string; vote: ApprovalVote }
  | { op: "denyApproval"; id: string; denial: ApprovalDenial }
  | { op: "consumeApproval"; id: string; use: ApprovalUse }
  | { op: "appendAudit" }
  | { op: "putTreeHead"; head: TreeHeadRecord }
  | { op: "putCosignature"; cosignature: CosignatureRecord }
  | { op: "switchCustody"; change: CustodySwitch };

/** One caller's write: applied and audited atomically, or not at all. */
export interface WriteUnit {
  write: WriteOp;
  events: AuditEventInput[];
}

/** Why a unit did not commit; the main thread maps each kind to an error class. */
export type UnitFailure = "conflict" | "invalid" | "unavailable";

export type UnitResult = { ok: true } | { ok: false; kind: UnitFailure; message: string };

export interface WriterOptions {
  path: string;
  busyTimeoutMs: number;
  /** SQLite max_page_count, when the file has a size cap. */
  maxPages?: number;
}

export type ToWriter = { type: "batch"; id: number; units: WriteUnit[] } | { type: "close" };

export type FromWriter =
  | { type: "ready"; headSeq: number }
  | { type: "fatal"; message: string }
  | { type: "batch"; id: number; results: UnitResult[] }
  | { type: "closed" };
