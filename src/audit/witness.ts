/**
 * The witness (docs/FORMATS.md §8.3): another hospital's process that polls a
 * node's signed tree heads and countersigns each one only after checking it —
 * signed by the log's pinned key, and an extension of the last head it
 * countersigned (an RFC 9162 consistency proof from the node, checked here
 * with merkle.ts). The design choice is that the witness trusts nothing but
 * its own record: every decision compares what the node serves now with what
 * the witness already signed, so a node that forks its log (two roots for one
 * size), rolls it back (a smaller head) or rewrites it (a proof that does not
 * verify) is caught by its own signatures. Such a finding is stored as
 * evidence (both signed heads), logged at level error, shown on the status
 * endpoint, and the witness stops countersigning that log for good. Network
 * failures and malformed answers are only errors: they prove nothing.
 */
import type { Logger } from "pino";
import { b64u, constantTimeEqual, hex } from "../crypto/bytes.js";
import type { TreeHeadRecord } from "../store/store.js";
import { cosign } from "./cosignature.js";
import { verifyConsistency } from "./merkle.js";
import { type TreeHeadJson, treeHeadFromJson, treeHeadToJson, verifyTreeHead } from "./tree-head.js";
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
}

export type PollResult =
  | { status: "cosigned"; size: number }
  | { status: "unchanged"; size: number }
  | { status: "refused"; problem: "wrong_key" | "bad_signature" | "malformed_head"; detail: string }
  | { status: "alarm"; kind: EvidenceKind; detail: string; evidence: number }
  | { status: "halted"; detail: string }
  | { status: "error"; detail: string };

interface LogState {
  lastPollAt: number | null;
  lastError: string | null;
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
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<unknown> = Promise.resolve();

  constructor(
    readonly store: WitnessStore,
    readonly key: WitnessKey,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Checks the node's current head and countersigns it if it extends what this witness signed. */
  async poll(source: LogSource): Promise<PollResult> {
    const state = this.#state.get(source.url) ?? { lastPollAt: null, lastError: null };
    this.#state.set(source.url, state);
    state.lastPollAt = this.now();
    const result = await this.#check(source).catch(
      (err: unknown): PollResult => ({ status: "error", detail: why(err) }),
    );
    state.lastError = result.status === "cosigned" || result.status === "unchanged" ? null : result.detail;
    if (result.status === "refused") {
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
    const alarms = this.store.evidence(log);
    if (alarms.length > 0) {
      return { status: "halted", detail: `not countersigning ${log}: ${alarms[0]!.kind} found earlier` };
    }
    const last = this.store.head(log);
    if (last === null) return this.#countersign(log, publicKey, head);
    const seen = last.head;
    const alarm = (kind: EvidenceKind, detail: string, earlier: TreeHeadRecord, proof: string[] | null) =>
      this.#alarm(source, log, publicKey, kind, detail, earlier, head, proof);
    if (head.size === seen.size) {
      if (constantTimeEqual(head.root, seen.root)) return { status: "unchanged", size: head.size };
      return alarm("fork", forkDetail(head.size, seen.root, head.root), seen, null);
    }
    if (head.size < seen.size) {
      const same = this.store.head(log, head.size)?.head;
      if (same && !constantTimeEqual(same.root, head.root)) {
        return alarm("fork", forkDetail(head.size, same.root, head.root), same, null);
      }
      return alarm(
        "rollback",
        `rollback: the node serves a head of size ${head.size} after this witness countersigned size ${seen.size}`,
        seen,
        null,
      );
    }
    const proofHex = await source.consistency(seen.size, head.size);
    let proof: Uint8Array[] | null;
    try {
      proof = proofHex.map((p, i) => hex.decode(p, `proof[${i}]`));
    } catch {
      proof = null;
    }
    if (proof === null || !verifyConsistency(seen.size, head.size, proof, seen.root, head.root)) {
      return alarm(
        "inconsistent",
        `inconsistent: the head of size ${head.size} (root ${hex.encode(head.root)}) does not extend the ` +
          `head of size ${seen.size} (root ${hex.encode(seen.root)}) this witness countersigned`,
        seen,
        proofHex,
      );
    }
    return this.#countersign(log, publicKey, head);
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
      const first = log === null ? undefined : this.store.evidence(log)[0];
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

  /** Polls every source now and then every `intervalMs`, one poll of each at a time. */
  start(sources: readonly LogSource[], intervalMs: number): void {
    const round = () => {
      this.#running = Promise.all(sources.map((s) => this.poll(s))).finally(() => {
        if (this.#timer !== null) this.#timer = setTimeout(round, intervalMs);
      });
    };
    this.#timer = setTimeout(round, 0);
  }

  /** Stops polling and waits for a poll in flight. */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running.catch(() => undefined);
  }
}

function forkDetail(size: number, seen: Uint8Array, now: Uint8Array): string {
  return `fork: two heads of size ${size} signed by the node, roots ${hex.encode(seen)} (countersigned) and ${hex.encode(now)}`;
}
