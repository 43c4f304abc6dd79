/**
 * Child servers for the benchmarks: the real `custos server --dev` (as in
 * test/e2e/harness.ts) and the bare hono baseline, each its own process on a
 * loopback port chosen by the OS. Every process started here is tracked so
 * that `stopAll()` — from a `finally` or a signal handler — ends it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** bin/custos.js of this checkout, or BENCH_CUSTOS_BIN (another checkout's, for A/B runs). */
export const CUSTOS_BIN =
  process.env.BENCH_CUSTOS_BIN || fileURLToPath(new URL("../bin/custos.js", import.meta.url));
export const BARE_SERVER = fileURLToPath(new URL("./bare-server.ts", import.meta.url));

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

export interface ServerProcess {
  name: string;
  url: string;
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then SIGKILL if it has not exited within 10 s. */
  stop(): Promise<void>;
}

const running = new Set<ServerProcess>();

// Last resort, whatever ends this process (process.exit, an uncaught error): no orphans.
process.on("exit", () => {
  for (const s of running) {
    if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill("SIGTERM");
  }
});

/**
 * Spawns `node ...args` and waits for a line matching `/listening on (http://\S+)/`
 * on stdout; rejects with the process's output if it exits or takes too long.
 */
export async function startServer(name: string, args: string[]): Promise<ServerProcess> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let stopping = false;
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const server: ServerProcess = {
    name,
    url: "",
    child,
    output: () => out,
    stop: () => {
      stopping = true;
      return stopChild(child).finally(() => running.delete(server));
    },
  };
  running.add(server);
  try {
    server.url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${name} did not start within ${START_TIMEOUT_MS} ms:\n${out}`)),
        START_TIMEOUT_MS,
      );
      const check = () => {
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      child.stdout?.on("data", check);
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${signal ?? code}) before listening:\n${out}`));
      });
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } catch (err) {
    await server.stop();
    throw err;
  }
  child.once("exit", (code, signal) => {
    if (!stopping) process.stderr.write(`\n${name} exited unexpectedly (${signal ?? code})\n`);
  });
  return server;
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Stops every server still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop()));
}

export interface CustosOptions {
  rootToken: string;
  dataDir: string;
  /** Extra node flags before bin/custos.js (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** Flags for `custos server`; default `--no-tpm`, so the dev server does not start a swtpm of its own. */
  serverFlags?: string[];
}

/** `node bin/custos.js server --dev --dev-root-token T --data-dir D --listen 127.0.0.1:0 --log-level warn --no-tpm` */
export function custosArgs({
  rootToken,
  dataDir,
  nodeFlags = [],
  serverFlags = ["--no-tpm"],
}: CustosOptions): string[] {
  return [
    ...nodeFlags,
    CUSTOS_BIN,
    "server",
    "--dev",
    "--dev-root-token",
    rootToken,
    "--data-dir",
    dataDir,
    "--listen",
    "127.0.0.1:0",
    "--log-level",
    "warn",
    ...serverFlags,
  ];
}

export function startCustos(opts: CustosOptions): Promise<ServerProcess> {
  return startServer("custos", custosArgs(opts));
}

/** `node --import tsx bench/bare-server.ts 127.0.0.1:0` */
export function startBare(nodeFlags: string[] = []): Promise<ServerProcess> {
  return startServer("bare", [...nodeFlags, "--import", "tsx", BARE_SERVER, "127.0.0.1:0"]);
}

/** A JSON request to a server; throws unless the status is the expected one. */
export async function call<T>(
  url: string,
  path: string,
  opts: { token?: string; body?: unknown; expect?: number; purpose?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  if (opts.purpose !== undefined) headers["x-purpose-of-use"] = opts.purpose;
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${url}${path}`, {
    method: opts.body === undefined ? "GET" : "POST",
    headers,
    body: opts.body === undefined ? null : JSON.stringify(opts.body),
  });
  const text = await res.text();
  const expect = opts.expect ?? 200;
  if (res.status !== expect) throw new Error(`${path}: expected ${expect}, got ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

/** A positive integer from the environment, or the default; anything else is an error naming the variable. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got '${raw}'`);
  return n;
}
