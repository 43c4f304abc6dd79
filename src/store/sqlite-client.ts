/**
 * The main-thread side of the writer: a queue, one batch in flight, and the
 * writer thread's lifecycle. Group commit falls out of the queue discipline:
 * while the writer is busy with a batch (mostly waiting for fsync), every
 * write that arrives waits in the queue, and when the batch comes back the
 * whole queue goes out as the next batch — so under load the number of
 * transactions grows with time, not with callers. An idle writer is fed on
 * the next turn of the event loop (setImmediate) rather than at once, so
 * writes issued together in one tick share a batch too. The writer thread is
 * treated as fallible: if it dies, the callers of the batch in flight are
 * told StoreUnavailableError (their outcome is unknown) and a new thread is
 * started, which re-reads the chain head from the database; if it cannot
 * start, callers are refused quickly instead of waiting forever.
 */
import { Worker } from "node:worker_threads";
import type { FromWriter, ToWriter, UnitResult, WriterOptions, WriteUnit } from "./sqlite-protocol.js";
import { StoreConflictError, StoreUnavailableError } from "./store.js";

/** Bounds one transaction, so a flood becomes several commits rather than one huge one. */
const MAX_BATCH_UNITS = 1000;
const MAX_BATCH_EVENTS = 10_000;
const RESTART_BACKOFF_MS = { first: 100, max: 5_000 };
const CLOSE_TIMEOUT_MS = 10_000;

/** Counters for observing group commit; they only grow. */
export interface WriterStats {
  /** Batches the writer answered, one transaction each. */
  batches: number;
  /** Units (caller writes) in those batches. */
  units: number;
  maxUnitsPerBatch: number;
  /** Batches whose transaction failed as a whole. */
  failedBatches: number;
  /** Times the writer thread was started again after stopping. */
  restarts: number;
}

interface Pending {
  unit: WriteUnit;
  resolve: () => void;
  reject: (err: Error) => void;
}

type Phase = "starting" | "ready" | "down";

/**
 * Locates the writer module next to this one. Compiled, it is
 * `sqlite-writer.js`; from sources (tsx, vitest) this file is `.ts` and the
 * worker starts through a small JS entry that loads tsx first.
 */
function writerEntry(): URL {
  const self = import.meta.url;
  return self.endsWith(".ts")
    ? new URL("./sqlite-writer-tsx.mjs", self)
    : new URL("./sqlite-writer.js", self);
}

export class WriterClient {
  private worker: Worker | null = null;
  private phase: Phase = "starting";
  /** close() was called: refuse new writes, drain the queue. */
  private closing = false;
  /** The queue is drained and the writer is being stopped: do not restart it. */
  private stopping = false;
  private queue: Pending[] = [];
  private inflight: { id: number; units: Pending[] } | null = null;
  private nextId = 1;
  private flushScheduled = false;
  private backoffMs = RESTART_BACKOFF_MS.first;
  private retryAt = 0;
  private downReason = "";
  private readonly onStarted: Array<(err: Error | null) => void> = [];
  private readonly onIdle: Array<() => void> = [];
  private closed: Promise<void> | null = null;
  private readonly counters: WriterStats = {
    batches: 0,
    units: 0,
    maxUnitsPerBatch: 0,
    failedBatches: 0,
    restarts: 0,
  };

  private constructor(private readonly options: WriterOptions) {}

  /** Starts the writer thread; rejects if it cannot open or migrate the database. */
  static async start(options: WriterOptions): Promise<WriterClient> {
    const client = new WriterClient(options);
    const started = new Promise<void>((resolve, reject) => {
      client.onStarted.push((err) => (err === null ? resolve() : reject(err)));
    });
    client.spawn();
    await started;
    return client;
  }

  stats(): WriterStats {
    return { ...this.counters };
  }

  submit(unit: WriteUnit): Promise<void> {
    if (this.closing) return Promise.reject(new StoreUnavailableError("store is closed"));
    if (this.phase === "down") {
      if (Date.now() < this.retryAt) {
        return Promise.reject(new StoreUnavailableError(`store writer is down: ${this.downReason}`));
      }
      this.spawn();
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ unit, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Waits for queued writes to finish, then stops the writer thread. */
  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  /** Test hook: kills the writer thread as a crash would. */
  async killWriterForTesting(): Promise<void> {
    await this.worker?.terminate();
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    await new Promise<void>((resolve) => {
      if (this.queue.length === 0 && this.inflight === null) resolve();
      else this.onIdle.push(resolve);
    });
    this.stopping = true;
    const worker = this.worker;
    if (worker === null) return;
    worker.ref();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => void worker.terminate().finally(resolve), CLOSE_TIMEOUT_MS);
      worker.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      worker.postMessage({ type: "close" } satisfies ToWriter);
    });
  }

  private spawn(): void {
    const worker = new Worker(writerEntry(), { workerData: this.options });
    this.worker = worker;
    this.phase = "starting";
    let failure = "writer thread exited";
    // Events of a replaced worker are ignored: `this.worker !== worker`.
    worker.on("message", (msg: FromWriter) => {
      if (this.worker !== worker) return;
      if (msg.type === "ready") this.onReadyMsg();
      else if (msg.type === "batch") this.onBatch(msg.id, msg.results);
      else if (msg.type === "fatal") {
        failure = msg.message;
        void worker.terminate(); // its exit reports the failure
      }
    });
    worker.on("error", (err) => {
      failure = `writer thread crashed: ${err.message}`;
    });
    worker.on("exit", () => {
      if (this.worker === worker) this.onGone(failure);
    });
  }

  private onReadyMsg(): void {
    this.phase = "ready";
    this.backoffMs = RESTART_BACKOFF_MS.first;
    for (const cb of this.onStarted.splice(0)) cb(null);
    this.scheduleFlush();
  }

  private onBatch(id: number, results: readonly UnitResult[]): void {
    const batch = this.inflight;
    if (batch === null || batch.id !== id) return;
    this.inflight = null;
    const c = this.counters;
    c.batches++;
    c.units += batch.units.length;
    c.maxUnitsPerBatch = Math.max(c.maxUnitsPerBatch, batch.units.length);
    if (results.length > 0 && results.every((r) => !r.ok && r.kind === "unavailable")) c.failedBatches++;
    batch.units.forEach((p, i) => {
      const r = results[i] ?? { ok: false, kind: "unavailable", message: "writer gave no result" };
      if (r.ok) p.resolve();
      else if (r.kind === "conflict") p.reject(new StoreConflictError(r.message));
      else if (r.kind === "invalid") p.reject(new RangeError(r.message));
      else p.reject(new StoreUnavailableError(r.message));
    });
    // Everything that queued up while this batch was being committed goes now.
    this.flush();
  }

  private onGone(failure: string): void {
    this.worker = null;
    const batch = this.inflight;
    this.inflight = null;
    for (const p of batch?.units ?? []) {
      p.reject(new StoreUnavailableError(`${failure}; the outcome of this write is unknown`));
    }
    if (this.stopping) return;
    if (this.phase === "ready") {
      // A working writer died: start another at once; queued writes wait for it.
      this.counters.restarts++;
      this.spawn();
      return;
    }
    // The writer could not start: refuse callers quickly until the back-off has passed.
    this.phase = "down";
    this.downReason = failure;
    this.retryAt = Date.now() + this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, RESTART_BACKOFF_MS.max);
    const down = `store writer is down: ${failure}`;
    for (const p of this.queue.splice(0)) p.reject(new StoreUnavailableError(down));
    for (const cb of this.onStarted.splice(0)) cb(new StoreUnavailableError(`cannot open store: ${failure}`));
    this.notifyIdle();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const worker = this.worker;
    if (worker === null || this.phase !== "ready" || this.inflight !== null || this.queue.length === 0) {
      this.notifyIdle();
      return;
    }
    let events = 0;
    let n = 0;
    while (n < this.queue.length && n < MAX_BATCH_UNITS) {
      const size = this.queue[n]?.unit.events.length ?? 0;
      if (n > 0 && events + size > MAX_BATCH_EVENTS) break;
      events += size;
      n++;
    }
    const units = this.queue.splice(0, n);
    const id = this.nextId++;
    try {
      worker.postMessage({ type: "batch", id, units: units.map((p) => p.unit) } satisfies ToWriter);
    } catch (err) {
      // A unit that cannot be cloned (a function smuggled into a record) must
      // not sink its neighbours: refuse it alone and send the rest.
      if (units.length === 1) {
        units[0]?.reject(new TypeError(`write cannot be sent to the writer: ${(err as Error).message}`));
        this.flush();
        return;
      }
      const sendable = units.filter((p) => {
        try {
          structuredClone(p.unit);
          return true;
        } catch (err) {
          p.reject(new TypeError(`write cannot be sent to the writer: ${(err as Error).message}`));
          return false;
        }
      });
      if (sendable.length === units.length) {
        // The units are fine; posting itself failed.
        const reason = `cannot reach the writer: ${(err as Error).message}`;
        for (const p of units) p.reject(new StoreUnavailableError(reason));
      } else {
        this.queue.unshift(...sendable);
      }
      this.flush();
      return;
    }
    this.inflight = { id, units };
    worker.ref();
  }

  private notifyIdle(): void {
    if (this.queue.length > 0 || this.inflight !== null) return;
    // An idle writer holds no one's data, so it need not keep the process alive.
    this.worker?.unref();
    for (const cb of this.onIdle.splice(0)) cb();
  }
}
