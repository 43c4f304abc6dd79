/**
 * Row shapes of the SQLite tables and their translation to and from the
 * store's domain records. Kept apart from the SQL so that the reader (main
 * thread) and the writer (worker thread) agree on one mapping, and so that the
 * JSON columns (custodians, roles) are parsed in exactly one place.
 */
import type { AuditEvent, ChainedAuditEvent } from "../audit/event.js";
import { TreeRecordSchema } from "../custody/tree.js";
import type { KeyRecord, KeyState, KeyVersionRecord, SealConfig } from "./store.js";

export interface SealConfigRow {
  init_id: string;
  threshold: number;
  shares: number;
  custodians: string;
  kcv: string;
  root_generation: number;
  created_at: string;
}

export interface KeyRow {
  name: string;
  protection: string;
  state: string;
  latest_version: number;
  min_decryption_version: number;
  rotation_period_s: number | null;
  deletion_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface KeyVersionRow {
  name: string;
  version: number;
  state: string;
  sealed_material: Uint8Array;
  created_at: string;
}

export interface AuditRow {
  seq: number;
  event: string;
  hash: Uint8Array;
}

/** better-sqlite3 hands back Buffers; callers get plain Uint8Arrays over the same bytes. */
export function bytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * The `custodians` column: a JSON array of custodian records for the flat
 * form, `{"custodians": [...], "tree": {...}}` for a custody tree
 * (docs/FORMATS.md §9). No schema change was needed, and a custos that
 * predates trees refuses such a row instead of misreading it.
 */
function custodiansColumn(c: SealConfig): string {
  const custodians = c.custodians.map((x) => ({
    id: x.id,
    index: x.index,
    publicKey: x.publicKey,
    commitment: x.commitment,
  }));
  return JSON.stringify(c.tree ? { custodians, tree: c.tree } : custodians);
}

function parseCustodiansColumn(text: string): Pick<SealConfig, "custodians" | "tree"> {
  const value = JSON.parse(text) as
    | SealConfig["custodians"]
    | Required<Pick<SealConfig, "custodians" | "tree">>;
  if (Array.isArray(value)) return { custodians: value };
  return { custodians: value.custodians, tree: TreeRecordSchema.parse(value.tree) };
}

export function sealConfigToRow(c: SealConfig): SealConfigRow {
  return {
    init_id: c.initId,
    threshold: c.threshold,
    shares: c.shares,
    custodians: custodiansColumn(c),
    kcv: c.kcv,
    root_generation: c.rootGeneration,
    created_at: c.createdAt,
  };
}

export function sealConfigFromRow(r: SealConfigRow): SealConfig {
  return {
    initId: r.init_id,
    threshold: r.threshold,
    shares: r.shares,
    ...parseCustodiansColumn(r.custodians),
    kcv: r.kcv,
    rootGeneration: r.root_generation,
    createdAt: r.created_at,
  };
}

export function keyToRow(k: KeyRecord): KeyRow {
  return {
    name: k.name,
    protection: k.protection,
    state: k.state,
    latest_version: k.latestVersion,
    min_decryption_version: k.minDecryptionVersion,
    rotation_period_s: k.rotationPeriodSeconds ?? null,
    deletion_at: k.deletionAt ?? null,
    created_at: k.createdAt,
    updated_at: k.updatedAt,
  };
}

export function keyFromRow(r: KeyRow): KeyRecord {
  return {
    name: r.name,
    // The CHECK constraints hold these columns to the union's members.
    protection: r.protection as KeyRecord["protection"],
    state: r.state as KeyState,
    latestVersion: r.latest_version,
    minDecryptionVersion: r.min_decryption_version,
    rotationPeriodSeconds: r.rotation_period_s,
    deletionAt: r.deletion_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function keyVersionToRow(v: KeyVersionRecord): KeyVersionRow {
  return {
    name: v.name,
    version: v.version,
    state: v.state,
    sealed_material: v.sealedMaterial,
    created_at: v.createdAt,
  };
}

export function keyVersionFromRow(r: KeyVersionRow): KeyVersionRecord {
  return {
    name: r.name,
    version: r.version,
    state: r.state as KeyVersionRecord["state"],
    sealedMaterial: bytes(r.sealed_material),
    createdAt: r.created_at,
  };
}

/** The event is rebuilt from its canonical JSON, the exact bytes that were hashed. */
export function auditFromRow(r: AuditRow): ChainedAuditEvent {
  return {
    event: JSON.parse(r.event) as AuditEvent,
    canonical: r.event,
    hash: Buffer.from(r.hash).toString("hex"),
  };
}
