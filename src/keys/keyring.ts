/**
 * The key ring: named, versioned keys and their life cycle (create, rotate,
 * enable/disable, minimum decryption version, scheduled destruction). Key
 * material is 32 random bytes per version, stored only as a record sealed
 * under the root key with the key name and version bound in (docs/FORMATS.md
 * §4). After unseal a version's material is unsealed on first use into a
 * `KeyHandle` and cached until the node seals; everything else talks to keys
 * only through that handle. Metadata is cached too, and every change goes to
 * the store first (with its audit event, in one transaction) and to the cache
 * after, so the cache never shows what is not durable.
 */

import type { Auditor, EventFields } from "../audit/auditor.js";
import { durably } from "../audit/auditor.js";
import { KEY_NAME_RE, ROOT_KEY_NAME, unwrap, wrap } from "../crypto/envelope.js";
import type { KeyHandle } from "../crypto/key-handle.js";
import { Secret } from "../crypto/secret.js";
import type { SealManager } from "../custody/seal.js";
import { CustosError } from "../errors.js";
import { type DisposableKeyHandle, type NewMaterial, ProtectionLevels } from "../protect/levels.js";
import { roundFailed, ThresholdKeyHandle } from "../protect/threshold.js";
import type { KeyPatch, KeyRecord, KeyVersionRecord, Protection, Store } from "../store/store.js";
import type { SetSpec } from "../threshold/descriptor.js";

/** A key as the API describes it: its record and its versions, never material. */
export interface KeyInfo extends KeyRecord {
  versions: { version: number; state: string; createdAt: string }[];
  /** Threshold keys: the latest version's public key and share nodes (public values, docs/FORMATS.md §11.2). */
  threshold?: ThresholdInfo;
}

export interface ThresholdInfo {
  publicKey: string;
  sets: {
    name: string;
    threshold: number;
    epoch: number;
    shareNodes: { node: string; identityKey: string; hpkeKey: string }[];
  }[];
}

export interface KeyUpdate {
  enabled?: boolean;
  minDecryptionVersion?: number;
  rotationPeriodSeconds?: number | null;
}

/** Where the audit event of an admin operation comes from: who, which request. */
export type AuditBase = Pick<EventFields, "principal" | "requestId">;

interface CachedKey {
  record: KeyRecord;
  versions: Map<number, KeyVersionRecord>;
  handles: Map<number, DisposableKeyHandle>;
  /** Set after a durable change: re-read metadata, keep the unsealed handles. */
  stale: boolean;
}

export const MIN_ROTATION_PERIOD_SECONDS = 3600;

export function materialContext(name: string, version: number): Record<string, string> {
  return { "custos.record": "key-material", key: name, version: String(version) };
}

export class KeyRing {
  #cache = new Map<string, CachedKey>();
  #locks = new Map<string, Promise<unknown>>();
  #sweeping: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    private readonly seal: SealManager,
    private readonly auditor: Auditor,
    private readonly destructionWaitSeconds: number,
    private readonly levels: ProtectionLevels = new ProtectionLevels(),
  ) {
    seal.onSeal(() => this.#dropAll());
  }

  async create(
    name: string,
    rotationPeriodSeconds: number | null,
    who: AuditBase,
    protection: Protection = this.levels.preferred,
    thresholdSets?: SetSpec[],
  ): Promise<KeyInfo> {
    assertKeyName(name);
    assertRotationPeriod(rotationPeriodSeconds);
    this.levels.assertAvailable(protection);
    return this.#locked(name, async () => {
      if ((await this.store.getKey(name)) !== null) {
        throw new CustosError(409, "key_exists", `key '${name}' already exists`);
      }
      const now = new Date().toISOString();
      const { version, stored } = await this.#newVersion(name, 1, now, protection, thresholdSets);
      const record: KeyRecord = {
        name,
        protection,
        state: "enabled",
        latestVersion: 1,
        minDecryptionVersion: 1,
        rotationPeriodSeconds,
        deletionAt: null,
        createdAt: now,
        updatedAt: now,
      };
      const event = this.auditor.event({
        ...who,
        operation: "keys.create",
        decision: "allow",
        key: name,
        keyVersion: 1,
      });
      await durably(() => this.store.createKey(record, version, event), `key '${name}' already exists`);
      await stored?.();
      return this.#refresh(name);
    });
  }

  /** Share nodes configured on this server, by name (none without --share-node). */
  shareNodeNames(): string[] {
    return this.levels.threshold?.nodeNames ?? [];
  }

  async list(): Promise<KeyInfo[]> {
    this.seal.root();
    const records = await this.store.listKeys();
    return Promise.all(records.map((r) => this.describe(r.name)));
  }

  async describe(name: string): Promise<KeyInfo> {
    const key = await this.#load(name);
    const info: KeyInfo = {
      ...key.record,
      versions: [...key.versions.values()].map((v) => ({
        version: v.version,
        state: v.state,
        createdAt: v.createdAt,
      })),
    };
    const latest = key.versions.get(key.record.latestVersion);
    if (key.record.protection === "threshold" && latest?.state === "enabled" && this.levels.threshold) {
      const d = (await this.#thresholdHandle(key, latest.version)).key.descriptor;
      info.threshold = {
        publicKey: d.publicKey,
        sets: d.sets.map((s) => ({
          name: s.name,
          threshold: s.threshold,
          epoch: s.epoch,
          shareNodes: s.members.map((m) => ({
            node: m.node,
            identityKey: m.identityKey,
            hpkeKey: m.hpkeKey,
          })),
        })),
      };
    }
    return info;
  }

  async rotate(name: string, who: AuditBase, reason?: string): Promise<KeyInfo> {
    return this.#locked(name, () => this.#rotateHeld(name, who, reason));
  }

  /** Rotation proper; the caller holds the key's lock. */
  async #rotateHeld(name: string, who: AuditBase, reason?: string): Promise<KeyInfo> {
    const key = await this.#load(name);
    if (key.record.state === "destroyed" || key.record.state === "pending-destruction") {
      throw new CustosError(409, "key_not_usable", `key '${name}' is ${key.record.state}`);
    }
    const now = new Date().toISOString();
    const next = key.record.latestVersion + 1;
    const specs = key.record.protection === "threshold" ? await this.#thresholdSpecs(key) : undefined;
    const { version, stored } = await this.#newVersion(name, next, now, key.record.protection, specs);
    const event = this.auditor.event({
      ...who,
      operation: "keys.rotate",
      decision: "allow",
      key: name,
      keyVersion: next,
      reason,
    });
    await durably(() => this.store.addKeyVersion(version, now, event));
    await stored?.();
    return this.#refresh(name);
  }

  async update(name: string, update: KeyUpdate, who: AuditBase): Promise<KeyInfo> {
    return this.#locked(name, async () => {
      const key = await this.#load(name);
      const patch: KeyPatch = {};
      const changes: string[] = [];
      if (update.enabled !== undefined) {
        if (key.record.state !== "enabled" && key.record.state !== "disabled") {
          throw new CustosError(
            409,
            "key_not_usable",
            `key '${name}' is ${key.record.state}; ${key.record.state === "pending-destruction" ? "cancel the destruction first" : "it cannot be enabled"}`,
          );
        }
        patch.state = update.enabled ? "enabled" : "disabled";
        changes.push(`state=${patch.state}`);
      }
      if (update.minDecryptionVersion !== undefined) {
        const v = update.minDecryptionVersion;
        if (!Number.isInteger(v) || v < 1 || v > key.record.latestVersion) {
          throw new CustosError(
            400,
            "invalid_request",
            `minDecryptionVersion must be between 1 and the latest version ${key.record.latestVersion}`,
          );
        }
        patch.minDecryptionVersion = v;
        changes.push(`minDecryptionVersion=${v}`);
      }
      if (update.rotationPeriodSeconds !== undefined) {
        assertRotationPeriod(update.rotationPeriodSeconds);
        patch.rotationPeriodSeconds = update.rotationPeriodSeconds;
        changes.push(`rotationPeriodSeconds=${update.rotationPeriodSeconds}`);
      }
      if (changes.length === 0) {
        throw new CustosError(
          400,
          "invalid_request",
          "nothing to change: give enabled, minDecryptionVersion or rotationPeriodSeconds",
        );
      }
      const now = new Date().toISOString();
      const event = this.auditor.event({
        ...who,
        operation: "keys.update",
        decision: "allow",
        key: name,
        reason: changes.join(", "),
      });
      await durably(() => this.store.updateKey(name, patch, now, event));
      return this.#refresh(name);
    });
  }

  async scheduleDestruction(name: string, who: AuditBase): Promise<KeyInfo> {
    return this.#locked(name, async () => {
      const key = await this.#load(name);
      if (key.record.state === "pending-destruction" || key.record.state === "destroyed") {
        throw new CustosError(409, "key_not_usable", `key '${name}' is already ${key.record.state}`);
      }
      const now = new Date();
      const deletionAt = new Date(now.getTime() + this.destructionWaitSeconds * 1000).toISOString();
      const event = this.auditor.event({
        ...who,
        operation: "keys.destroy.schedule",
        decision: "allow",
        key: name,
        reason: `destruction scheduled for ${deletionAt}`,
      });
      await durably(() =>
        this.store.updateKey(name, { state: "pending-destruction", deletionAt }, now.toISOString(), event),
      );
      return this.#refresh(name);
    });
  }

  async cancelDestruction(name: string, who: AuditBase): Promise<KeyInfo> {
    return this.#locked(name, async () => {
      const key = await this.#load(name);
      if (key.record.state !== "pending-destruction") {
        throw new CustosError(409, "not_scheduled", `key '${name}' is not scheduled for destruction`);
      }
      const now = new Date().toISOString();
      const event = this.auditor.event({
        ...who,
        operation: "keys.destroy.cancel",
        decision: "allow",
        key: name,
        reason: "destruction cancelled; the key stays disabled until enabled",
      });
      await durably(() => this.store.updateKey(name, { state: "disabled", deletionAt: null }, now, event));
      return this.#refresh(name);
    });
  }

  /**
   * Housekeeping run periodically while unsealed: destroys keys whose waiting
   * period is over and rotates keys whose rotation period has passed.
   */
  async sweep(now = new Date()): Promise<void> {
    // One sweep at a time: two overlapping sweeps would both find a key due.
    this.#sweeping ??= this.#sweep(now).finally(() => {
      this.#sweeping = null;
    });
    return this.#sweeping;
  }

  async #sweep(now: Date): Promise<void> {
    if (this.seal.sealed) return;
    const who: AuditBase = { principal: "custos" };
    for (const { name } of await this.store.listKeys()) {
      // Decide under the key's lock on a fresh read: an administrator may have
      // cancelled a destruction or rotated the key since the list was taken,
      // and destruction cannot be undone.
      await this.#locked(name, async () => {
        const record = await this.store.getKey(name);
        if (record === null || this.seal.sealed) return;
        if (record.state === "pending-destruction") {
          if (record.deletionAt === null || new Date(record.deletionAt) > now) return;
          const event = this.auditor.event({
            ...who,
            operation: "keys.destroy",
            decision: "allow",
            key: name,
            reason: "waiting period over; key material destroyed",
          });
          await durably(() => this.store.destroyKey(name, now.toISOString(), event));
          this.#dropKey(name);
        } else if (record.state === "enabled" && record.rotationPeriodSeconds !== null) {
          const versions = await this.store.getKeyVersions(name);
          const latest = versions.find((v) => v.version === record.latestVersion);
          const age = latest ? (now.getTime() - new Date(latest.createdAt).getTime()) / 1000 : 0;
          if (age >= record.rotationPeriodSeconds)
            await this.#rotateHeld(name, who, "rotation period elapsed");
        }
      });
    }
  }

  /**
   * The key for a use: must exist and be enabled. `version` defaults to the
   * latest; a version below the minimum decryption version is refused.
   */
  async usable(
    name: string,
    version?: number,
  ): Promise<{ record: KeyRecord; version: number; handle: KeyHandle }> {
    const key = await this.#load(name);
    if (key.record.state !== "enabled")
      throw new KeyUseError("key_disabled", `key '${name}' is ${key.record.state}`);
    const v = version ?? key.record.latestVersion;
    if (v < key.record.minDecryptionVersion) {
      throw new KeyUseError(
        "version_retired",
        `version ${v} is below minDecryptionVersion ${key.record.minDecryptionVersion}`,
      );
    }
    const cached = key.handles.get(v);
    if (cached) return { record: key.record, version: v, handle: cached };
    const stored = key.versions.get(v);
    if (stored === undefined || stored.state !== "enabled") {
      throw new KeyUseError("unknown_version", `key '${name}' has no usable version ${v}`);
    }
    const material = await unwrap(this.seal.root(), stored.sealedMaterial, materialContext(name, v));
    const handle = await this.levels.load(key.record.protection, Secret.of(material), name, v);
    // Another request may have loaded the same version meanwhile: keep one, release the other.
    const raced = key.handles.get(v);
    if (raced) {
      handle.dispose();
      return { record: key.record, version: v, handle: raced };
    }
    key.handles.set(v, handle);
    return { record: key.record, version: v, handle };
  }

  async #newVersion(
    name: string,
    version: number,
    now: string,
    protection: Protection,
    thresholdSets?: SetSpec[],
  ): Promise<{ version: KeyVersionRecord; stored: NewMaterial["stored"] }> {
    const { material, stored } = await this.levels.newMaterial(protection, name, version, thresholdSets);
    try {
      const sealed = await wrap(
        this.seal.root(),
        ROOT_KEY_NAME,
        this.seal.rootGeneration,
        material.reveal(),
        materialContext(name, version),
      );
      return { version: { name, version, state: "enabled", sealedMaterial: sealed, createdAt: now }, stored };
    } finally {
      material.dispose();
    }
  }

  /** The trust sets of a threshold key's latest version, for its next version. */
  async #thresholdSpecs(key: CachedKey): Promise<SetSpec[]> {
    const handle = await this.#thresholdHandle(key, key.record.latestVersion);
    return handle.key.specs();
  }

  async #thresholdHandle(key: CachedKey, version: number): Promise<ThresholdKeyHandle> {
    const stored = key.versions.get(version);
    if (stored === undefined || stored.state !== "enabled") {
      throw new CustosError(
        409,
        "unknown_version",
        `key '${key.record.name}' has no usable version ${version}`,
      );
    }
    const name = key.record.name;
    const material = await unwrap(this.seal.root(), stored.sealedMaterial, materialContext(name, version));
    const handle = await this.levels.load("threshold", Secret.of(material), name, version);
    if (!(handle instanceof ThresholdKeyHandle))
      throw new Error("threshold material did not load as a threshold key");
    return handle;
  }

  /**
   * Proactive refresh (docs/FORMATS.md §11.6): new shares for every usable
   * version of a threshold key, same public key. Each version's new
   * descriptor is stored (with its audit event) before the share nodes are
   * told to drop their old shares, so a crash in between leaves the new
   * shares pending and usable, never a descriptor without shares.
   */
  async refreshShares(
    name: string,
    who: AuditBase,
  ): Promise<KeyInfo & { refreshed: number[]; notCommitted: string[] }> {
    return this.#locked(name, async () => {
      const key = await this.#load(name);
      if (key.record.protection !== "threshold") {
        throw new CustosError(
          409,
          "not_threshold",
          `key '${name}' is protected by ${key.record.protection}, not by share nodes`,
        );
      }
      const coordinator = this.levels.threshold;
      if (!coordinator)
        throw new CustosError(503, "threshold_unavailable", "this node has no share nodes configured");
      const refreshed: number[] = [];
      const notCommitted = new Set<string>();
      for (const v of key.versions.values()) {
        if (v.state !== "enabled" || v.version < key.record.minDecryptionVersion) continue;
        const current = await this.#thresholdHandle(key, v.version);
        const next = await coordinator.refresh(current.key).catch(roundFailed);
        const sealed = await wrap(
          this.seal.root(),
          ROOT_KEY_NAME,
          this.seal.rootGeneration,
          next.toBytes(),
          materialContext(name, v.version),
        );
        const now = new Date().toISOString();
        const event = this.auditor.event({
          ...who,
          operation: "keys.refresh-shares",
          decision: "allow",
          key: name,
          keyVersion: v.version,
          reason: `epochs ${next.descriptor.sets.map((s) => `${s.name}=${s.epoch}`).join(", ")}`,
        });
        await durably(() => this.store.replaceKeyMaterial(name, v.version, sealed, now, event));
        key.handles.get(v.version)?.dispose();
        key.handles.delete(v.version);
        for (const n of await coordinator.commit(next)) notCommitted.add(n);
        refreshed.push(v.version);
      }
      const info = await this.#refresh(name);
      return { ...info, refreshed, notCommitted: [...notCommitted] };
    });
  }

  /** Re-reads a key after a durable change, keeping its unsealed version handles. */
  async #refresh(name: string): Promise<KeyInfo> {
    const cached = this.#cache.get(name);
    if (cached) cached.stale = true;
    return this.describe(name);
  }

  async #load(name: string): Promise<CachedKey> {
    this.seal.root();
    const cached = this.#cache.get(name);
    if (cached && !cached.stale) return cached;
    const record = KEY_NAME_RE.test(name) ? await this.store.getKey(name) : null;
    if (record === null) throw new CustosError(404, "key_not_found", `no key named '${name}'`);
    const versions = await this.store.getKeyVersions(name);
    const entry: CachedKey = {
      record,
      versions: new Map(versions.map((v) => [v.version, v])),
      handles: cached?.handles ?? new Map(),
      stale: false,
    };
    this.#cache.set(name, entry);
    return entry;
  }

  async #locked<T>(name: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(name) ?? Promise.resolve();
    const run = previous.then(task, task);
    const tail = run.catch(() => undefined);
    this.#locks.set(name, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(name) === tail) this.#locks.delete(name);
    }
  }

  #dropKey(name: string): void {
    const key = this.#cache.get(name);
    if (key) for (const h of key.handles.values()) h.dispose();
    this.#cache.delete(name);
  }

  #dropAll(): void {
    for (const name of [...this.#cache.keys()]) this.#dropKey(name);
  }
}

/** Why a key could not be used; the caller sees an opaque error for decryption, the audit sees this. */
export class KeyUseError extends Error {
  override name = "KeyUseError";
  constructor(
    readonly reason: "key_disabled" | "version_retired" | "unknown_version",
    message: string,
  ) {
    super(message);
  }
}

function assertKeyName(name: string): void {
  if (!KEY_NAME_RE.test(name)) {
    throw new CustosError(
      400,
      "invalid_key_name",
      `key name must match ${KEY_NAME_RE.source} (lowercase letters, digits, '.', '_', '-'; at most 128)`,
    );
  }
}

function assertRotationPeriod(seconds: number | null): void {
  if (seconds === null) return;
  if (!Number.isInteger(seconds) || seconds < MIN_ROTATION_PERIOD_SECONDS || seconds > 10 * 365 * 86400) {
    throw new CustosError(
      400,
      "invalid_request",
      `rotationPeriodSeconds must be an integer between ${MIN_ROTATION_PERIOD_SECONDS} and ten years`,
    );
  }
}
