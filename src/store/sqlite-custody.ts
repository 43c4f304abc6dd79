/**
 * The switch of a custody change in SQLite (docs/FORMATS.md §5.9): the one
 * transaction that makes a rekey or a root rotation happen. It is a
 * compare-and-swap — the stored init id must be the one the change started
 * from, and for a rotation the records it re-seals must be exactly the
 * sealed records stored, byte for byte — so a key created, rotated or
 * destroyed while the ceremony ran makes the switch a conflict (the caller
 * re-seals and retries) instead of leaving a record under the old root. The
 * same file guards the other direction: once the active root generation has
 * moved, a write carrying a record sealed under another generation (a
 * request that read the old root just before the switch) is refused. No
 * schema change: the seal configuration row is updated in place.
 */
import type Database from "better-sqlite3";
import { sealConfigToRow } from "./sqlite-rows.js";
import type { CustodySwitch, SealedRecord } from "./store.js";

/** For the reader: every record sealed under the root key. */
export const SEALED_RECORDS_SQL = `
  SELECT 'key-material' AS kind, name, version, sealed_material AS sealed
    FROM key_versions WHERE length(sealed_material) > 0
  UNION ALL
  SELECT 'sys-secret' AS kind, name, 0 AS version, sealed FROM sys_secrets
  ORDER BY kind, name, version`;

export interface SealedRow {
  kind: SealedRecord["kind"];
  name: string;
  version: number;
  sealed: Uint8Array;
}

const ROOT_NAME = Buffer.from("_root", "ascii");

/**
 * The root generation a sealed record names (docs/FORMATS.md §3–§4: format 1,
 * key name `_root`, version = generation), or null for bytes that are not a
 * root-sealed record (threshold descriptors in tests, for instance).
 */
export function sealedGeneration(sealed: Uint8Array): number | null {
  if (sealed.length < 2 + ROOT_NAME.length + 4 || sealed[0] !== 0x01 || sealed[1] !== ROOT_NAME.length) {
    return null;
  }
  if (Buffer.compare(Buffer.from(sealed.subarray(2, 2 + ROOT_NAME.length)), ROOT_NAME) !== 0) return null;
  return Buffer.from(sealed.subarray(7, 11)).readUInt32BE(0);
}

const recordKey = (r: Pick<SealedRecord, "kind" | "name" | "version">) =>
  `${r.kind}\u0000${r.name}\u0000${r.version}`;

export class CustodyWrites {
  private readonly selectConfig: Database.Statement<[], { init_id: string; root_generation: number }>;
  private readonly selectSealed: Database.Statement<[], SealedRow>;
  private readonly updateConfig: Database.Statement<[ReturnType<typeof sealConfigToRow>]>;
  private readonly updateMaterial: Database.Statement<[Uint8Array, string, number]>;
  private readonly updateSecret: Database.Statement<[Uint8Array, string]>;

  constructor(
    db: Database.Database,
    private readonly conflict: (message: string) => Error,
  ) {
    this.selectConfig = db.prepare("SELECT init_id, root_generation FROM seal_config WHERE id = 1");
    this.selectSealed = db.prepare(SEALED_RECORDS_SQL);
    this.updateConfig = db.prepare(
      `UPDATE seal_config SET init_id = @init_id, threshold = @threshold, shares = @shares,
              custodians = @custodians, kcv = @kcv, root_generation = @root_generation, created_at = @created_at
        WHERE id = 1`,
    );
    this.updateMaterial = db.prepare(
      "UPDATE key_versions SET sealed_material = ? WHERE name = ? AND version = ? AND length(sealed_material) > 0",
    );
    this.updateSecret = db.prepare("UPDATE sys_secrets SET sealed = ? WHERE name = ?");
  }

  switchCustody(w: CustodySwitch): void {
    const current = this.selectConfig.get();
    if (current === undefined) throw this.conflict("custos is not initialised");
    if (current.init_id !== w.fromInitId) {
      throw this.conflict(`custody changed meanwhile: init id ${current.init_id}, not ${w.fromInitId}`);
    }
    const g = w.config.rootGeneration;
    if (g !== current.root_generation && g !== current.root_generation + 1) {
      throw new RangeError(`root generation ${g} does not follow ${current.root_generation}`);
    }
    if (g === current.root_generation + 1) this.#reseal(w, g);
    else if (w.resealed.length > 0) throw new RangeError("a rekey keeps the root: it re-seals nothing");
    this.updateConfig.run(sealConfigToRow(w.config));
  }

  /** Every stored record must be replaced, each from exactly the bytes stored, by one of generation `g`. */
  #reseal(w: CustodySwitch, g: number): void {
    const stored = new Map(this.selectSealed.all().map((r) => [recordKey(r), r]));
    if (stored.size !== w.resealed.length) {
      throw this.conflict(
        `the key ring changed during the rotation (${stored.size} sealed records, ${w.resealed.length} re-sealed)`,
      );
    }
    for (const r of w.resealed) {
      const old = stored.get(recordKey(r));
      if (old === undefined || Buffer.compare(Buffer.from(old.sealed), Buffer.from(r.from)) !== 0) {
        throw this.conflict(
          `the key ring changed during the rotation (${r.kind} ${r.name} ${r.version || ""})`.trim(),
        );
      }
      if (sealedGeneration(r.sealed) !== g)
        throw new RangeError(`${r.kind} ${r.name} is not sealed under generation ${g}`);
      if (r.kind === "key-material") this.updateMaterial.run(r.sealed, r.name, r.version);
      else this.updateSecret.run(r.sealed, r.name);
    }
  }

  /** Refuses a record sealed under a root generation that is not the active one. */
  checkGeneration(sealed: Uint8Array, what: string): void {
    const g = sealedGeneration(sealed);
    const current = this.selectConfig.get();
    if (g !== null && current !== undefined && g !== current.root_generation) {
      throw this.conflict(
        `${what} is sealed under root generation ${g} but generation ${current.root_generation} is active (the root was rotated meanwhile); retry`,
      );
    }
  }
}
