/**
 * Applies one write unit on the writer connection: the state change, then its
 * audit events, numbered and chained after the head it is given. It runs
 * inside the savepoint the writer opened for the unit and never commits; it
 * signals an expected refusal (duplicate name, wrong version, already
 * initialised) by throwing `UnitConflict`, so the writer can roll back just
 * this unit. The chain head is passed in and the new head returned rather
 * than kept here, so a unit that fails leaves the caller's head untouched —
 * there is nothing to restore.
 */
import type Database from "better-sqlite3";
import { appendEvent, type ChainHead, GENESIS_HASH } from "../audit/chain.js";
import type { AuditEventInput } from "../audit/event.js";
import { leafHash } from "../audit/merkle.js";
import { ApprovalWrites } from "./sqlite-approvals.js";
import { CustodyWrites } from "./sqlite-custody.js";
import type { UnitFailure, WriteOp, WriteUnit } from "./sqlite-protocol.js";
import { ReviewWrites } from "./sqlite-reviews.js";
import { type KeyRow, keyFromRow, keyToRow, keyVersionToRow, sealConfigToRow } from "./sqlite-rows.js";
import { SubtreeWrites } from "./sqlite-subtrees.js";
import { TokenWrites } from "./sqlite-tokens.js";

/** An expected refusal of one unit; its batch neighbours are unaffected. */
export class UnitConflict extends Error {
  override name = "UnitConflict";
}

export class WriteApplier {
  private readonly sealConfigExists: Database.Statement<[], unknown>;
  private readonly insertSealConfig: Database.Statement<[ReturnType<typeof sealConfigToRow>]>;
  private readonly insertSecret: Database.Statement<[string, Uint8Array]>;
  private readonly selectKey: Database.Statement<[string], KeyRow>;
  private readonly insertKey: Database.Statement<[KeyRow]>;
  private readonly insertVersion: Database.Statement<[ReturnType<typeof keyVersionToRow>]>;
  private readonly setLatest: Database.Statement<[number, string, string]>;
  private readonly updateKeyRow: Database.Statement<[KeyRow]>;
  private readonly destroyKeyRow: Database.Statement<[string, string]>;
  private readonly destroyVersions: Database.Statement<[string]>;
  private readonly insertAudit: Database.Statement<
    [number, string, string, string, string | null, string | null, string, string, Uint8Array, Uint8Array]
  >;
  private readonly insertHead: Database.Statement<[number, Uint8Array, number, Uint8Array]>;
  private readonly selectHead: Database.Statement<[number], { root: Uint8Array; timestamp: number }>;
  private readonly insertCosignature: Database.Statement<
    [Uint8Array, number, string, Uint8Array, number, number, Uint8Array]
  >;
  private readonly insertSubject: Database.Statement<[string, number]>;
  private readonly auditSize: Database.Statement<[], { size: number | null }>;
  private readonly lastAudit: Database.Statement<[], { seq: number; hash: Uint8Array }>;

  private readonly reviews: ReviewWrites;
  private readonly custody: CustodyWrites;
  private readonly approvals: ApprovalWrites;
  private readonly tokens: TokenWrites;
  private readonly subtrees: SubtreeWrites;

  constructor(private readonly db: Database.Database) {
    this.reviews = new ReviewWrites(db, (message) => new UnitConflict(message));
    this.custody = new CustodyWrites(db, (message) => new UnitConflict(message));
    this.approvals = new ApprovalWrites(db, (message) => new UnitConflict(message));
    this.tokens = new TokenWrites(db, (message) => new UnitConflict(message));
    this.subtrees = new SubtreeWrites(db);
    this.sealConfigExists = db.prepare("SELECT 1 FROM seal_config");
    this.insertSealConfig = db.prepare(
      `INSERT INTO seal_config (id, init_id, threshold, shares, custodians, kcv, root_generation, created_at)
       VALUES (1, @init_id, @threshold, @shares, @custodians, @kcv, @root_generation, @created_at)`,
    );
    this.insertSecret = db.prepare("INSERT INTO sys_secrets (name, sealed) VALUES (?, ?)");
    this.selectKey = db.prepare("SELECT * FROM keys WHERE name = ?");
    this.insertKey = db.prepare(
      `INSERT INTO keys (name, protection, state, latest_version, min_decryption_version,
                         rotation_period_s, deletion_at, created_at, updated_at)
       VALUES (@name, @protection, @state, @latest_version, @min_decryption_version,
               @rotation_period_s, @deletion_at, @created_at, @updated_at)`,
    );
    this.insertVersion = db.prepare(
      `INSERT INTO key_versions (name, version, state, sealed_material, created_at)
       VALUES (@name, @version, @state, @sealed_material, @created_at)`,
    );
    this.setLatest = db.prepare("UPDATE keys SET latest_version = ?, updated_at = ? WHERE name = ?");
    this.updateKeyRow = db.prepare(
      `UPDATE keys SET state = @state, min_decryption_version = @min_decryption_version,
                       rotation_period_s = @rotation_period_s, deletion_at = @deletion_at,
                       updated_at = @updated_at
       WHERE name = @name`,
    );
    this.destroyKeyRow = db.prepare("UPDATE keys SET state = 'destroyed', updated_at = ? WHERE name = ?");
    this.destroyVersions = db.prepare(
      "UPDATE key_versions SET state = 'destroyed', sealed_material = X'' WHERE name = ?",
    );
    this.insertAudit = db.prepare(
      `INSERT INTO audit_events (seq, time, principal, operation, key_name, purpose, decision, event, hash, leaf)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertSubject = db.prepare("INSERT OR IGNORE INTO audit_subjects (hmac, seq) VALUES (?, ?)");
    this.insertHead = db.prepare(
      "INSERT INTO audit_heads (size, root, timestamp, signature) VALUES (?, ?, ?, ?)",
    );
    this.selectHead = db.prepare("SELECT root, timestamp FROM audit_heads WHERE size = ?");
    this.insertCosignature = db.prepare(
      `INSERT OR IGNORE INTO audit_cosignatures
         (witness_key, size, witness, root, timestamp, cosigned_at, signature) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.auditSize = db.prepare("SELECT max(seq) AS size FROM audit_events");
    this.lastAudit = db.prepare("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1");
  }

  /** The committed end of the chain, as the database holds it. */
  loadHead(): ChainHead {
    const row = this.lastAudit.get();
    if (row === undefined) return { seq: 0, hash: GENESIS_HASH };
    return { seq: row.seq, hash: new Uint8Array(row.hash) };
  }

  /** Applies `unit` and appends its events after `head`; returns the new head. */
  apply(unit: WriteUnit, head: ChainHead): ChainHead {
    this.applyWrite(unit.write);
    return this.appendEvents(unit.events, head);
  }

  private applyWrite(w: WriteOp): void {
    switch (w.op) {
      case "initialize": {
        if (this.sealConfigExists.get() !== undefined)
          throw new UnitConflict("custos is already initialised");
        this.insertSealConfig.run(sealConfigToRow(w.config));
        for (const [name, sealed] of Object.entries(w.secrets)) this.insertSecret.run(name, sealed);
        this.tokens.put(w.rootToken);
        return;
      }
      case "createKey": {
        if (this.selectKey.get(w.key.name) !== undefined) {
          throw new UnitConflict(`key ${w.key.name} already exists`);
        }
        this.custody.checkGeneration(w.first.sealedMaterial, `key ${w.key.name}`);
        this.insertKey.run(keyToRow(w.key));
        this.insertVersion.run(keyVersionToRow(w.first));
        return;
      }
      case "addKeyVersion": {
        const { name, version } = w.version;
        const row = this.selectKey.get(name);
        if (row === undefined) throw new UnitConflict(`key ${name} does not exist`);
        // Checked here, inside the writer's transaction, so two rotations racing
        // for the same version number cannot both win.
        if (version !== row.latest_version + 1) {
          throw new UnitConflict(`key ${name}: version ${version} is not ${row.latest_version + 1}`);
        }
        this.custody.checkGeneration(w.version.sealedMaterial, `key ${name} version ${version}`);
        this.insertVersion.run(keyVersionToRow(w.version));
        this.setLatest.run(version, w.updatedAt, name);
        return;
      }
      case "replaceKeyMaterial": {
        this.custody.checkGeneration(w.sealedMaterial, `key ${w.name} version ${w.version}`);
        const changed = this.db
          .prepare(
            "UPDATE key_versions SET sealed_material = ? WHERE name = ? AND version = ? AND state = 'enabled'",
          )
          .run(w.sealedMaterial, w.name, w.version).changes;
        if (changed !== 1) throw new UnitConflict(`key ${w.name} has no enabled version ${w.version}`);
        this.db.prepare("UPDATE keys SET updated_at = ? WHERE name = ?").run(w.updatedAt, w.name);
        return;
      }
      case "updateKey": {
        const row = this.selectKey.get(w.name);
        if (row === undefined) throw new UnitConflict(`key ${w.name} does not exist`);
        const key = keyFromRow(row);
        // Only fields present in the patch change; null is a value (clear the field).
        const p = w.patch;
        if (p.state !== undefined) key.state = p.state;
        if (p.minDecryptionVersion !== undefined) key.minDecryptionVersion = p.minDecryptionVersion;
        if (p.rotationPeriodSeconds !== undefined) key.rotationPeriodSeconds = p.rotationPeriodSeconds;
        if (p.deletionAt !== undefined) key.deletionAt = p.deletionAt;
        key.updatedAt = w.updatedAt;
        this.updateKeyRow.run(keyToRow(key));
        return;
      }
      case "destroyKey": {
        const row = this.selectKey.get(w.name);
        if (row === undefined) throw new UnitConflict(`key ${w.name} does not exist`);
        if (row.state === "destroyed") throw new UnitConflict(`key ${w.name} is already destroyed`);
        this.destroyKeyRow.run(w.updatedAt, w.name);
        // Empty, not NULL: the column stays NOT NULL and "destroyed" reads the same everywhere.
        this.destroyVersions.run(w.name);
        return;
      }
      case "putToken":
        this.tokens.put(w.token);
        return;
      case "revokeToken":
        this.tokens.revoke(w.hash);
        return;
      case "touchToken":
        this.tokens.touch(w.hash, w.at);
        return;
      case "putReview":
        this.reviews.put(w.review);
        return;
      case "closeReview":
        this.reviews.closeReview(w.id, w.close);
        return;
      case "putApproval":
        this.approvals.put(w.approval);
        return;
      case "approveApproval":
        this.approvals.approve(w.id, w.vote);
        return;
      case "denyApproval":
        this.approvals.denyRequest(w.id, w.denial);
        return;
      case "consumeApproval":
        this.approvals.consumeRequest(w.id, w.use);
        return;
      case "appendAudit":
        return;
      case "putTreeHead": {
        const { size, root, timestamp, signature } = w.head;
        // A head may only describe events that exist; its size is its key, so
        // a second, different head for one size is a conflict, never an overwrite.
        if (size > (this.auditSize.get()?.size ?? 0)) throw new UnitConflict(`no tree of size ${size} yet`);
        this.insertHead.run(size, root, timestamp, signature);
        return;
      }
      case "switchCustody":
        this.custody.switchCustody(w.change);
        return;
      case "putCosignature": {
        const c = w.cosignature;
        // Only a countersignature on a head this node signed: same size, root and time.
        const head = this.selectHead.get(c.size);
        if (head === undefined || Buffer.compare(head.root, c.root) !== 0 || head.timestamp !== c.timestamp) {
          throw new UnitConflict(`the countersignature is not on this node's head of size ${c.size}`);
        }
        this.insertCosignature.run(
          c.witnessKey,
          c.size,
          c.witness,
          c.root,
          c.timestamp,
          c.cosignedAt,
          c.signature,
        );
        return;
      }
    }
  }

  private appendEvents(events: readonly AuditEventInput[], head: ChainHead): ChainHead {
    let h = head;
    for (const input of events) {
      const next = appendEvent(h, input);
      const e = next.chained.event;
      const leaf = leafHash(Buffer.from(next.chained.canonical, "utf8"));
      this.insertAudit.run(
        e.seq,
        e.time,
        e.principal,
        e.operation,
        e.key ?? null,
        e.purpose ?? null,
        e.decision,
        next.chained.canonical,
        next.head.hash,
        leaf,
      );
      // The Merkle subtrees this event completes, in the same transaction (sqlite-subtrees.ts).
      this.subtrees.leafAdded(e.seq, leaf);
      for (const hmac of Object.values(e.context ?? {})) this.insertSubject.run(hmac, e.seq);
      h = next.head;
    }
    return h;
  }
}

/**
 * Sorts an error thrown while applying a unit: a failure that belongs to the
 * unit alone, or null for one that means the transaction itself is in doubt
 * (I/O error, disk full, lock lost), which fails the whole batch.
 */
export function classifyUnitError(err: unknown): UnitFailure | null {
  if (err instanceof UnitConflict) return "conflict";
  if (err instanceof TypeError || err instanceof RangeError) return "invalid";
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code.startsWith("SQLITE_CONSTRAINT")) {
    return code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "SQLITE_CONSTRAINT_UNIQUE"
      ? "conflict"
      : "invalid";
  }
  return null;
}
