/**
 * The node's side of witnessing (docs/FORMATS.md §8.3): it polls the
 * witnesses it is configured with for their newest countersignature on its
 * log and keeps the ones that check out. Pull rather than push: the node
 * opens no write endpoint to other hospitals and gives them no credential;
 * what it fetches is untrusted input until it verifies under one of the
 * configured witness keys, names this node's audit key as its log, and covers
 * a head this node signed (same size, root and timestamp — the store checks
 * that too). A countersignature on a head the node never signed is the sign of
 * a fork (this node was restored from an old copy, or another node signs with
 * its key); it is logged at level error and not stored. An answer is read
 * only up to MAX_WITNESS_ANSWER_BYTES (a countersignature is a few hundred
 * bytes): a witness cannot make the node buffer what it likes.
 */
import type { Logger } from "pino";
import { b64u, constantTimeEqual } from "../crypto/bytes.js";
import { discardBody, readBounded } from "../net/bounded-read.js";
import type { Store } from "../store/store.js";
import { cosignatureFromJson, verifyCosignature } from "./cosignature.js";
import type { WitnessPublicKey } from "./witness-key.js";

export interface WitnessConfig {
  /** Base URLs of witnesses to poll. */
  urls: string[];
  /** Countersignatures are accepted only under these keys. */
  keys: WitnessPublicKey[];
  /** Default 5000. */
  intervalMs?: number;
}

/** The most of a witness's answer read (docs/FORMATS.md §8.3). */
export const MAX_WITNESS_ANSWER_BYTES = 64 * 1024;

export type CollectResult =
  | { url: string; status: "stored"; witness: string; size: number }
  | { url: string; status: "none" | "already" }
  | { url: string; status: "refused" | "error"; detail: string };

const why = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class WitnessCollector {
  #timer: NodeJS.Timeout | null = null;
  #latest = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly config: WitnessConfig,
    /** The node's audit public key; null while it is not loaded (sealed). */
    private readonly logKey: () => Uint8Array | null,
    private readonly log: Logger,
  ) {}

  start(): void {
    const round = () => {
      this.collect().finally(() => {
        if (this.#timer !== null) this.#timer = setTimeout(round, this.config.intervalMs ?? 5000).unref();
      });
    };
    this.#timer = setTimeout(round, 0).unref();
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** One round over every witness; never throws. */
  async collect(): Promise<CollectResult[]> {
    const key = this.logKey();
    if (key === null) return [];
    return Promise.all(
      this.config.urls.map((url) =>
        this.#collectFrom(url, key).catch((err: unknown): CollectResult => {
          this.log.warn({ witness: url }, `cannot collect a countersignature: ${why(err)}`);
          return { url, status: "error", detail: why(err) };
        }),
      ),
    );
  }

  async #collectFrom(url: string, logKey: Uint8Array): Promise<CollectResult> {
    const res = await fetch(`${url.replace(/\/+$/, "")}/v1/witness/cosignature?log=${b64u.encode(logKey)}`, {
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status === 404 || !res.ok) await discardBody(res.body);
    if (res.status === 404) return { url, status: "none" };
    if (!res.ok) throw new Error(`the witness answered ${res.status}`);
    const raw = await readBounded(res.body, MAX_WITNESS_ANSWER_BYTES, {
      what: `the answer of witness ${url}`,
      declaredLength: res.headers.get("content-length"),
    });
    const body = JSON.parse(Buffer.from(raw).toString("utf8")) as { cosignature?: unknown };
    const c = cosignatureFromJson(body.cosignature);
    const refuse = (detail: string, level: "warn" | "error" = "warn"): CollectResult => {
      this.log[level]({ witness: url, size: c.size }, `countersignature refused: ${detail}`);
      return { url, status: "refused", detail };
    };
    const pinned = this.config.keys.find((k) => constantTimeEqual(k.publicKey, c.witnessKey));
    if (pinned === undefined)
      return refuse(`signed by ${b64u.encode(c.witnessKey)}, not a configured witness key`);
    if (!constantTimeEqual(c.log, logKey)) return refuse("it names another log");
    if (!verifyCosignature(c)) return refuse(`bad countersignature by ${pinned.witness}`, "error");
    if (this.#latest.get(pinned.fingerprint) === c.size) return { url, status: "already" };
    const head = await this.store.getTreeHead(c.size);
    if (head === null || !constantTimeEqual(head.root, c.root) || head.timestamp !== c.timestamp) {
      return refuse(
        `witness ${pinned.witness} countersigned a head of size ${c.size} that this node did not sign ` +
          "(a fork: was this node restored from an old copy, or does another node sign with its key?)",
        "error",
      );
    }
    await this.store.putCosignature({
      witness: pinned.witness,
      witnessKey: c.witnessKey,
      size: c.size,
      root: c.root,
      timestamp: c.timestamp,
      cosignedAt: c.cosignedAt,
      signature: c.signature,
    });
    this.#latest.set(pinned.fingerprint, c.size);
    return { url, status: "stored", witness: pinned.witness, size: c.size };
  }
}
