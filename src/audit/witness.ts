/**
 * The witness (docs/FORMATS.md §8.3): another hospital's process that polls a
 * node's signed tree heads and countersigns each one only after checking it —
 * signed by the log's pinned key, and an extension of the last head it
 * countersigned (an RFC 9162 consistency proof from the node, checked here
 * with merkle.ts). The design choice is that the witness trusts nothing but
 * its own record: every decision compares what the node serves now with what
 * the witness already signed, so a node that forks its log (two roots for one
 * size) or rolls it back (a smaller head signed later) is caught by its own
 * signatures (witness-conflict.ts says exactly when two heads conflict). Such
 * a finding is stored as evidence (both signed heads), logged at level error,
 * shown on the status endpoint, and the witness stops countersigning that log
 * for good. Everything else is only an error, because it proves nothing: a
 * network failure, a malformed answer, an older head served again, and a
 * consistency proof that is malformed or does not verify — the witness does
 * not countersign, logs it, and tries again, after a failed proof with an
 * exponential backoff, so one spoiled answer cannot silence it forever.
 */
import type { Logger } from "pino";
import { b64u, hex } from "../crypto/bytes.js";
import type { TreeHeadRecord } from "../store/store.js";
import { cosign } from "./cosignature.js";
import { verifyConsistency } from "./merkle.js";
import { type TreeHeadJson, treeHeadFromJson, treeHeadToJson, verifyTreeHead } from "./tree-head.js";
import { conflictOf, evidenceProvesConflict } from "./witness-conflict.js";
import type { WitnessKey } from "./witness-key.js";
import type { EvidenceKind, WitnessStore } from "./witness-store.js";

/** Where a witness reads one node's log from (HTTP in production, in memory in tests). */
export interface LogSource {
  readonly url: string;
  /** Pins the log's key explicitly instead of on first sight (b64u). */
  readonly pinnedKey?: string;
  head(): Promise<TreeHeadJson>;
  /** The consistency proof between the trees of `from` and `to` events, hex. */
  consistency(from: number, to: number): Promise<string[]>;
  /** The node's largest signed head of at most `size` events, or null if it has none. */
  headAtMost?(size: number): Promise<TreeHeadJson | null>;
}

export type PollResult =
  | { status: "cosigned"; size: number }
  | { status: "unchanged"; size: number }
  | { status: "refused"; problem: "wrong_key" | "bad_signature" | "malformed_head"; detail: string }
  | { status: "alarm"; kind: EvidenceKind; detail: string; evidence: number }
  | { status: "halted"; detail: string }
  /** The node's consistency proof is malformed or does not verify: not evidence; retried with backoff. */
  | { status: "unproven"; detail: string }
  | { status: "error"; detail: string };

interface LogState {
  lastPollAt: number | null;
  lastError: string | null;
  /** Consecutive polls whose consistency proof did not check out (the backoff's exponent). */
  proofFailures: number;
}

/** Backoff after failed proofs: the interval doubled per failure, at most 2^6 times, and at most ten minutes. */
const BACKOFF_MAX_DOUBLINGS = 6;
const BACKOFF_CAP_MS = 600_000;

export function retryDelayMs(intervalMs: number, proofFailures: number): number {
  if (proofFailures <= 0) return intervalMs;
  const backoff = intervalMs * 2 ** Math.min(proofFailures, BACKOFF_MAX_DOUBLINGS);
  return Math.max(intervalMs, Math.min(backoff, BACKOFF_CAP_MS));
}

export interface WitnessLogStatus {
  log: string | null;
  url: string;
  size: number | null;
  rootHash: string | null;
  timestamp: number | null;
  cosignedAt: number | null;
  lastPollAt: number | null;
  lastError: string | null;
  alarm: { kind: EvidenceKind; detail: string; at: number } | null;
}

export interface WitnessStatus {
  witness: string;
  publicKey: string;
  alarm: boolean;
  logs: WitnessLogStatus[];
}

const why = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class Witness {
  readonly #state = new Map<string, LogState>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #inFlight = new Set<Promise<unknown>>();
  #stopped = true;

  constructor(
    readonly store: WitnessStore,
    readonly key: WitnessKey,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Checks the node's current head and countersigns it if it extends what this witness signed. */
  async poll(source: LogSource): Promise<PollResult> {
    const state = this.#state.get(source.url) ?? { lastPollAt: null, lastError: null, proofFailures: 0 };
    this.#state.set(source.url, state);
    state.lastPollAt = this.now();
    const result = await this.#check(source).catch(
      (err: unknown): PollResult => ({ status: "error", detail: why(err) }),
    );
    state.lastError = result.status === "cosigned" || result.status === "unchanged" ? null : result.detail;
    if (result.status === "unproven") state.proofFailures++;
    else if (result.status === "cosigned" || result.status === "unchanged") state.proofFailures = 0;
    if (result.status === "unproven") {
      // Still not evidence after many tries, but someone must look: the log is no longer being witnessed.
      const level = state.proofFailures > BACKOFF_MAX_DOUBLINGS ? "error" : "warn";
      this.log[level](
        { url: source.url, failures: state.proofFailures },
        `witness could not verify the node's consistency proof (not evidence; not countersigning; retrying with backoff): ${result.detail}`,
      );
    } else if (result.status === "refused") {
      this.log.error(
        { url: source.url, problem: result.problem },
        `witness refused a head: ${result.detail}`,
      );
    } else if (result.status === "error") {
      this.log.warn({ url: source.url }, `witness poll failed: ${result.detail}`);
    }
    return result;
  }

  async #check(source: LogSource): Promise<PollResult> {
    const served = await source.head();
    let parsed: ReturnType<typeof treeHeadFromJson>;
    try {
      parsed = treeHeadFromJson(served);
    } catch (err) {
      return { status: "refused", problem: "malformed_head", detail: why(err) };
    }
    const { head, publicKey } = parsed;
    const served64 = b64u.encode(publicKey);
    let pinned = this.store.pinnedLog(source.url);
    if (pinned === null) {
      // Trust on first use, unless the operator pinned the key on the command line.
      pinned = source.pinnedKey ?? served64;
      this.store.pin(source.url, pinned, this.now());
      this.log.info({ url: source.url, log: pinned }, "witness pinned the log's audit key");
    } else if (source.pinnedKey !== undefined && source.pinnedKey !== pinned) {
      return {
        status: "refused",
        problem: "wrong_key",
        detail: `--log-key ${source.pinnedKey} differs from the key ${pinned} pinned earlier for ${source.url}`,
      };
    }
    if (served64 !== pinned) {
      return {
        status: "refused",
        problem: "wrong_key",
        detail: `the head of size ${head.size} is signed by ${served64}, not by the pinned log key ${pinned}`,
      };
    }
    if (!verifyTreeHead(publicKey, head)) {
      return {
        status: "refused",
        problem: "bad_signature",
        detail: `the signature on the head of size ${head.size} does not verify`,
      };
    }
    const log = pinned;
    const proven = this.store.evidence(log).find(evidenceProvesConflict);
    if (proven) {
      return { status: "halted", detail: `not countersigning ${log}: ${proven.kind} found earlier` };
    }
    const last = this.store.head(log);
    if (last === null) return this.#countersign(log, publicKey, head);
    const seen = last.head;
    const alarm = (earlier: TreeHeadRecord) => {
      const kind = conflictOf(earlier, head);
      if (kind === null) return null;
      const detail =
        kind === "fork" ? forkDetail(head.size, earlier.root, head.root) : rollbackDetail(earlier, head);
      return this.#alarm(source, log, publicKey, kind, detail, earlier, head, null);
    };
    if (head.size === seen.size) return alarm(seen) ?? { status: "unchanged", size: head.size };
    if (head.size < seen.size) {
      const found = this.#againstHeld(log, head, seen, alarm);
      if (found) return found;
      return {
        status: "error",
        detail:
          `the node serves a head of size ${head.size}, older than the head of size ${seen.size} this witness ` +
          "countersigned, and signed no later: a replayed or cached answer, not evidence",
      };
    }
    const later = alarm(seen);
    if (later) return later;
    const proofHex = await source.consistency(seen.size, head.size);
    let proof: Uint8Array[] | null = null;
    try {
      if (Array.isArray(proofHex)) proof = proofHex.map((p, i) => hex.decode(p, `proof[${i}]`));
    } catch {
      proof = null;
    }
    if (proof !== null && verifyConsistency(seen.size, head.size, proof, seen.root, head.root)) {
      return this.#countersign(log, publicKey, head);
    }
    // The proof proves nothing either way; a signed head the node holds might (a restored node's first heads).
    const signed = await this.#nodeHeadAtMost(source, publicKey, seen.size);
    if (signed) {
      const found = this.#againstHeld(log, signed, seen, (earlier) => {
        const kind = conflictOf(earlier, signed);
        if (kind === null) return null;
        const detail =
          kind === "fork"
            ? forkDetail(signed.size, earlier.root, signed.root)
            : rollbackDetail(earlier, signed);
        return this.#alarm(source, log, publicKey, kind, detail, earlier, signed, proofHex);
      });
      if (found) return found;
    }
    return {
      status: "unproven",
      detail:
        proof === null
          ? `the node's consistency proof from size ${seen.size} to ${head.size} is malformed`
          : `the node's consistency proof from size ${seen.size} (root ${hex.encode(seen.root)}) to ` +
            `${head.size} (root ${hex.encode(head.root)}) does not verify`,
    };
  }

  /**
   * A smaller signed head against what this witness holds: the countersigned
   * head of that size, the newest, and the next larger one (the earliest
   * signed of the larger). The first conflict, as an alarm, or null.
   */
  #againstHeld(
    log: string,
    head: TreeHeadRecord,
    seen: TreeHeadRecord,
    alarm: (earlier: TreeHeadRecord) => PollResult | null,
  ): PollResult | null {
    const same = this.store.head(log, head.size)?.head;
    const above = this.store.heads(log, head.size + 1, 1)[0]?.head;
    for (const earlier of [same, seen, above]) {
      const found = earlier && alarm(earlier);
      if (found) return found;
    }
    return null;
  }

  /** The node's largest head of at most `size` events, if it serves one signed by the pinned key; never throws. */
  async #nodeHeadAtMost(source: LogSource, logKey: Uint8Array, size: number): Promise<TreeHeadRecord | null> {
    if (!source.headAtMost) return null;
    try {
      const json = await source.headAtMost(size);
      if (json === null) return null;
      const { head, publicKey } = treeHeadFromJson(json);
      if (b64u.encode(publicKey) !== b64u.encode(logKey) || head.size > size) return null;
      return verifyTreeHead(publicKey, head) ? head : null;
    } catch {
      return null;
    }
  }

  #countersign(log: string, logKey: Uint8Array, head: TreeHeadRecord): PollResult {
    const cosignature = cosign(this.key.secretKey, this.key.witness, {
      log: logKey,
      size: head.size,
      root: head.root,
      timestamp: head.timestamp,
      cosignedAt: this.now(),
    });
    this.store.putHead({ head, cosignature });
    this.log.debug({ log, size: head.size }, "witness countersigned a head");
    return { status: "cosigned", size: head.size };
  }

  #alarm(
    source: LogSource,
    log: string,
    logKey: Uint8Array,
    kind: EvidenceKind,
    detail: string,
    earlier: TreeHeadRecord,
    now: TreeHeadRecord,
    proof: string[] | null,
  ): PollResult {
    const id = this.store.addEvidence({
      log,
      kind,
      detail,
      seen: treeHeadToJson(earlier, logKey),
      conflicting: treeHeadToJson(now, logKey),
      proof,
      recordedAt: this.now(),
    });
    this.log.error(
      { alarm: kind, log, url: source.url, evidence: id, sizes: [earlier.size, now.size] },
      `WITNESS ALARM: ${detail}; both signed heads kept as evidence ${id}; no longer countersigning this log`,
    );
    return { status: "alarm", kind, detail, evidence: id };
  }

  status(urls: readonly string[]): WitnessStatus {
    const logs = urls.map((url): WitnessLogStatus => {
      const log = this.store.pinnedLog(url);
      const latest = log === null ? null : this.store.head(log);
      const first = log === null ? undefined : this.store.evidence(log).find(evidenceProvesConflict);
      const state = this.#state.get(url);
      return {
        log,
        url,
        size: latest?.head.size ?? null,
        rootHash: latest ? hex.encode(latest.head.root) : null,
        timestamp: latest?.head.timestamp ?? null,
        cosignedAt: latest?.cosignature.cosignedAt ?? null,
        lastPollAt: state?.lastPollAt ?? null,
        lastError: state?.lastError ?? null,
        alarm: first ? { kind: first.kind, detail: first.detail, at: first.recordedAt } : null,
      };
    });
    return {
      witness: this.key.witness,
      publicKey: b64u.encode(this.key.publicKey),
      alarm: logs.some((l) => l.alarm !== null),
      logs,
    };
  }

  /**
   * Polls every source now and then every `intervalMs`, one poll of each at a
   * time; after failed consistency proofs a source waits longer
   * (`retryDelayMs`), and a good poll brings it back to the interval.
   */
  start(sources: readonly LogSource[], intervalMs: number): void {
    this.#stopped = false;
    for (const source of sources) {
      const next = () => {
        if (this.#stopped) return;
        const run = this.poll(source).finally(() => {
          this.#inFlight.delete(run);
          if (this.#stopped) return;
          const failures = this.#state.get(source.url)?.proofFailures ?? 0;
          this.#timers.set(source.url, setTimeout(next, retryDelayMs(intervalMs, failures)));
        });
        this.#inFlight.add(run);
      };
      this.#timers.set(source.url, setTimeout(next, 0));
    }
  }

  /** Stops polling and waits for the polls in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await Promise.all([...this.#inFlight].map((p) => p.catch(() => undefined)));
  }
}

function forkDetail(size: number, seen: Uint8Array, now: Uint8Array): string {
  return `fork: two heads of size ${size} signed by the node, roots ${hex.encode(seen)} (countersigned) and ${hex.encode(now)}`;
}

function rollbackDetail(earlier: TreeHeadRecord, now: TreeHeadRecord): string {
  const [small, large] = earlier.size < now.size ? [earlier, now] : [now, earlier];
  return (
    `rollback: the node signed a head of size ${small.size} at ${small.timestamp}, later than its head of ` +
    `size ${large.size} at ${large.timestamp} (countersigned ${earlier === large ? "the larger" : "the smaller"}): the log shrank`
  );
}
