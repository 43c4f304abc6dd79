/**
 * A minimal typed wrapper around autocannon 8 (which ships no type
 * declarations): only the options and result fields the benchmarks use.
 * autocannon is CommonJS; it is loaded with createRequire and given this
 * interface, so nothing untyped leaks into the benchmark.
 */
import { createRequire } from "node:module";

export interface LoadRequest {
  method: "GET" | "POST";
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadOptions {
  /** Origin (`http://127.0.0.1:PORT`); each request's `path` is resolved against it. */
  url: string;
  connections: number;
  pipelining: number;
  /** Seconds. */
  duration: number;
  /** Per-request timeout, seconds. */
  timeout?: number;
  /** Each connection cycles through these in order. */
  requests: LoadRequest[];
  title?: string;
}

/** autocannon's histogram summary: mean/stddev/min/max and percentiles p0_001 … p99_999. */
export interface Histogram {
  average: number;
  mean: number;
  stddev: number;
  min: number;
  max: number;
  total: number;
  p50: number;
  p90: number;
  p97_5: number;
  p99: number;
}

export interface LoadResult {
  title?: string;
  url: string;
  connections: number;
  pipelining: number;
  duration: number;
  start: Date;
  finish: Date;
  errors: number;
  timeouts: number;
  mismatches: number;
  non2xx: number;
  resets: number;
  "1xx": number;
  "2xx": number;
  "3xx": number;
  "4xx": number;
  "5xx": number;
  statusCodeStats: Record<string, { count: number }>;
  /** Milliseconds per request. */
  latency: Histogram & { totalCount: number };
  /** Requests completed per sample second; `total` is the count over the run, `sent` what was sent. */
  requests: Histogram & { sent: number };
  /** Bytes per sample second. */
  throughput: Histogram;
}

interface Instance extends PromiseLike<LoadResult> {
  stop(): void;
  on(event: "error", listener: (err: Error) => void): this;
}

type Autocannon = (opts: LoadOptions) => Instance;

const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

let current: Instance | null = null;

/** Runs one load test; resolves with autocannon's aggregated result. */
export function load(opts: LoadOptions): Promise<LoadResult> {
  return new Promise<LoadResult>((resolve, reject) => {
    const instance = autocannon(opts);
    current = instance;
    instance.on("error", reject);
    instance.then(
      (result) => {
        current = null;
        resolve(result);
      },
      (err: unknown) => {
        current = null;
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Stops the load test in progress, if any (it then resolves with what it measured). */
export function stopLoad(): void {
  current?.stop();
}
