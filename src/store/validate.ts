/**
 * Checks a store makes before it queues a write. They are deliberately
 * narrow: the callers (keys, custody, api) own the domain rules such as key
 * name syntax; what is checked here is what the store itself relies on —
 * that an audit event can be chained, and that the records of one write agree
 * with each other (a key and its first version name the same key). Failing
 * here, on the caller's own stack, gives a clearer error than a constraint
 * failure reported back from the writer. Any store implementation can use it.
 */
import type { AuditEventInput } from "../audit/event.js";
import type { KeyPatch, KeyRecord, KeyVersionRecord } from "./store.js";

const DECISIONS = new Set(["allow", "deny", "error"]);
const OPTIONAL_STRINGS = ["reason", "key", "purpose", "custodian", "requestId", "rule"] as const;

function nonEmpty(value: unknown, name: string): void {
  if (typeof value !== "string") throw new TypeError(`${name} must be a string`);
  if (value.length === 0) throw new RangeError(`${name} must not be empty`);
}

function positiveInt(value: unknown, name: string): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
}

export function checkEvent(e: AuditEventInput, name = "event"): void {
  if (typeof e !== "object" || e === null) throw new TypeError(`${name} must be an object`);
  nonEmpty(e.time, `${name}.time`);
  nonEmpty(e.principal, `${name}.principal`);
  nonEmpty(e.operation, `${name}.operation`);
  if (!DECISIONS.has(e.decision)) throw new RangeError(`${name}.decision must be allow, deny or error`);
  for (const field of OPTIONAL_STRINGS) {
    const v = e[field];
    if (v !== undefined && typeof v !== "string") throw new TypeError(`${name}.${field} must be a string`);
  }
  if (e.keyVersion !== undefined) positiveInt(e.keyVersion, `${name}.keyVersion`);
  if (e.breakGlass !== undefined && typeof e.breakGlass !== "boolean")
    throw new TypeError(`${name}.breakGlass must be a boolean`);
  for (const field of ["context", "clearContext"] as const) {
    const map = e[field];
    if (map === undefined) continue;
    if (typeof map !== "object" || map === null) throw new TypeError(`${name}.${field} must be an object`);
    for (const [k, v] of Object.entries(map)) {
      if (typeof v !== "string") throw new TypeError(`${name}.${field}.${k} must be a string`);
    }
  }
  // Whatever else could make the event unchainable (a lone surrogate, say) is
  // found by the writer when it chains the event, and fails only that write
  // ("invalid"); chaining it here as well cost ~5 % of the envelope hot path.
}

export function checkEvents(events: readonly AuditEventInput[]): void {
  if (!Array.isArray(events)) throw new TypeError("events must be an array");
  events.forEach((e, i) => {
    checkEvent(e, `events[${i}]`);
  });
}

export function checkKeyVersion(v: KeyVersionRecord, name = "version"): void {
  nonEmpty(v.name, `${name}.name`);
  positiveInt(v.version, `${name}.version`);
  if (!(v.sealedMaterial instanceof Uint8Array))
    throw new TypeError(`${name}.sealedMaterial must be a Uint8Array`);
}

export function checkNewKey(key: KeyRecord, first: KeyVersionRecord): void {
  nonEmpty(key.name, "key.name");
  checkKeyVersion(first, "first");
  if (first.name !== key.name)
    throw new RangeError(`first.name (${first.name}) must equal key.name (${key.name})`);
  if (first.version !== 1) throw new RangeError(`first.version must be 1, got ${first.version}`);
  if (key.latestVersion !== first.version) {
    throw new RangeError(`key.latestVersion must be ${first.version}, got ${key.latestVersion}`);
  }
}

export function checkPatch(patch: KeyPatch): void {
  if (typeof patch !== "object" || patch === null) throw new TypeError("patch must be an object");
  if (patch.minDecryptionVersion !== undefined)
    positiveInt(patch.minDecryptionVersion, "patch.minDecryptionVersion");
  const period = patch.rotationPeriodSeconds;
  if (period !== undefined && period !== null) positiveInt(period, "patch.rotationPeriodSeconds");
}
