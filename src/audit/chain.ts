/**
 * The audit hash chain (docs/FORMATS.md §8). Each event is serialised to
 * canonical JSON and hashed together with its sequence number and the previous
 * hash, so that altering, deleting or reordering any stored event breaks every
 * later link. The chain is defined over the *event*, not over the stored
 * bytes: `verifyChain` recomputes the canonical JSON from the parsed event, so
 * an edit to the event that leaves the stored canonical string untouched is
 * still caught. Canonical JSON is the small RFC 8785 subset the events need —
 * strings, safe integers, booleans, objects and arrays — and refuses
 * everything else (null, fractions, non-plain objects) instead of guessing how
 * to encode it, because two encoders that disagree would split the chain.
 */
import { createHash } from "node:crypto";
import type { AuditEvent, AuditEventInput, ChainedAuditEvent } from "./event.js";

const LABEL = "custos/audit/v1";
const HASH_LEN = 32;
/** Nesting deeper than this is a bug (events are at most two levels deep), not data. */
const MAX_DEPTH = 16;

/** hash_0: the link before the first event. Treat as read-only. */
export const GENESIS_HASH: Uint8Array = new Uint8Array(HASH_LEN);

/** The end of a chain: the last sequence number and its hash (seq 0 and GENESIS_HASH when empty). */
export interface ChainHead {
  seq: number;
  hash: Uint8Array;
}

export type ChainProblem = "seq" | "event" | "hash";

export type ChainVerdict =
  | { ok: true; last: ChainHead }
  /** `seq` is the expected sequence number of the first bad link. */
  | { ok: false; seq: number; problem: ChainProblem; detail: string };

/** RFC 8785 serialisation of the subset described in the module comment. */
export function canonicalJson(value: unknown): string {
  return encode(value, 0, "value");
}

function encode(value: unknown, depth: number, path: string): string {
  if (depth > MAX_DEPTH) throw new RangeError(`${path}: nested deeper than ${MAX_DEPTH} levels`);
  switch (typeof value) {
    case "string":
      // JSON.stringify escapes exactly as RFC 8785 requires; lone surrogates are
      // refused because they have no UTF-8 form and would hash ambiguously.
      if (/\p{Surrogate}/u.test(value)) throw new RangeError(`${path}: string holds a lone surrogate`);
      return JSON.stringify(value);
    case "number":
      if (!Number.isSafeInteger(value)) throw new RangeError(`${path}: ${value} is not a safe integer`);
      return Object.is(value, -0) ? "0" : String(value);
    case "boolean":
      return value ? "true" : "false";
    case "object":
      if (value === null) throw new TypeError(`${path}: null is not allowed (omit the field)`);
      if (Array.isArray(value)) {
        return `[${value.map((v, i) => encode(v, depth + 1, `${path}[${i}]`)).join(",")}]`;
      }
      return encodeObject(value, depth, path);
    default:
      throw new TypeError(`${path}: ${typeof value} is not allowed`);
  }
}

function encodeObject(value: object, depth: number, path: string): string {
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError(`${path}: only plain objects are allowed`);
  }
  const record = value as Record<string, unknown>;
  // Default sort compares UTF-16 code units, which is the order RFC 8785 prescribes.
  const keys = Object.keys(record).sort();
  const parts: string[] = [];
  for (const key of keys) {
    const v = record[key];
    // An absent optional field may arrive as an own property set to undefined.
    if (v === undefined) continue;
    parts.push(`${encode(key, depth + 1, path)}:${encode(v, depth + 1, `${path}.${key}`)}`);
  }
  return `{${parts.join(",")}}`;
}

/** hash_n = SHA-256("custos/audit/v1" ‖ u64be(n) ‖ hash_{n-1} ‖ utf8(canonicalEvent_n)). */
export function chainHash(seq: number, prevHash: Uint8Array, canonical: string): Uint8Array {
  if (!Number.isSafeInteger(seq) || seq < 1)
    throw new RangeError(`seq must be a positive safe integer: ${seq}`);
  if (!(prevHash instanceof Uint8Array) || prevHash.length !== HASH_LEN) {
    throw new TypeError(`prevHash must be ${HASH_LEN} bytes`);
  }
  if (typeof canonical !== "string") throw new TypeError("canonical must be a string");
  const n = Buffer.alloc(8);
  n.writeBigUInt64BE(BigInt(seq));
  const digest = createHash("sha256")
    .update(LABEL, "ascii")
    .update(n)
    .update(prevHash)
    .update(canonical, "utf8");
  return new Uint8Array(digest.digest());
}

/**
 * Numbers and hashes the next event after `head`. Only the fields of
 * `AuditEvent` are kept, so a stray property on the input (a request object
 * spread by mistake) can never reach the permanent log.
 */
export function appendEvent(
  head: ChainHead,
  input: AuditEventInput,
): { chained: ChainedAuditEvent; head: ChainHead } {
  const seq = head.seq + 1;
  const event = pickEvent(input, seq);
  const canonical = canonicalJson(event);
  const hash = chainHash(seq, head.hash, canonical);
  return { chained: { event, canonical, hash: Buffer.from(hash).toString("hex") }, head: { seq, hash } };
}

function pickEvent(input: AuditEventInput, seq: number): AuditEvent {
  const event: AuditEvent = {
    seq,
    time: input.time,
    principal: input.principal,
    operation: input.operation,
    decision: input.decision,
  };
  if (input.reason !== undefined) event.reason = input.reason;
  if (input.key !== undefined) event.key = input.key;
  if (input.keyVersion !== undefined) event.keyVersion = input.keyVersion;
  if (input.purpose !== undefined) event.purpose = input.purpose;
  if (input.context !== undefined) event.context = { ...input.context };
  if (input.clearContext !== undefined) event.clearContext = { ...input.clearContext };
  if (input.custodian !== undefined) event.custodian = input.custodian;
  if (input.requestId !== undefined) event.requestId = input.requestId;
  if (input.rule !== undefined) event.rule = input.rule;
  if (input.breakGlass !== undefined) event.breakGlass = input.breakGlass;
  return event;
}

/**
 * Checks that `events` continue the chain from `prev` (the genesis when
 * omitted): consecutive seqs, canonical JSON that matches the event, and
 * hashes that link. Verifying a long log page by page passes each page's
 * `last` as the next page's `prev`. Truncation after the last event cannot be
 * seen from the events alone; compare `last` with a head recorded elsewhere.
 */
export function verifyChain(events: readonly ChainedAuditEvent[], prev?: ChainHead): ChainVerdict {
  let head: ChainHead = prev ?? { seq: 0, hash: GENESIS_HASH };
  for (const stored of events) {
    const expected = head.seq + 1;
    const seq = stored.event?.seq;
    if (seq !== expected) {
      return {
        ok: false,
        seq: expected,
        problem: "seq",
        detail: `expected seq ${expected}, found ${String(seq)}`,
      };
    }
    let canonical: string;
    try {
      canonical = canonicalJson(stored.event);
    } catch (err) {
      return {
        ok: false,
        seq: expected,
        problem: "event",
        detail: `event cannot be encoded: ${message(err)}`,
      };
    }
    if (canonical !== stored.canonical) {
      return {
        ok: false,
        seq: expected,
        problem: "event",
        detail: "event does not match its stored canonical JSON",
      };
    }
    const hash = chainHash(expected, head.hash, canonical);
    if (Buffer.from(hash).toString("hex") !== stored.hash.toLowerCase()) {
      return {
        ok: false,
        seq: expected,
        problem: "hash",
        detail: "hash does not link to the previous event",
      };
    }
    head = { seq: expected, hash };
  }
  return { ok: true, last: head };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
