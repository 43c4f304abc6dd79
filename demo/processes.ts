/**
 * The processes the consortium demo drives: the `custos` CLI (one run per
 * ceremony step, its output returned) and one `custos server` at a time on
 * a fixed port and data directory, so the demo can restart it — first
 * without a policy to mint tokens, then with the consortium policy. A step
 * that fails throws `DemoFailure`, which the demo reports and exits 1 on.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT_DIR = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT_DIR, "bin", "custos.js");

export class DemoFailure extends Error {}

export function expectThat(ok: boolean, what: string): void {
  if (!ok) throw new DemoFailure(what);
}

/** A loopback port that was free a moment ago (the server keeps it across its restart). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const address = s.address();
      const port = typeof address === "object" && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Runs `custos ARGS` in `cwd`; resolves with its output, rejects with its error output. */
export function cli(cwd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, ...env }, cwd, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) reject(new DemoFailure(`custos ${args.join(" ")} failed: ${stderr || err.message}`));
        else resolve(`${stdout}${stderr}`);
      },
    );
  });
}

export class DemoServer {
  #child: ChildProcess | null = null;

  constructor(
    private readonly dataDir: string,
    private readonly port: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts `custos server` with `extra` flags and waits until it listens. */
  async start(extra: string[]): Promise<void> {
    const args = [
      "server",
      "--data-dir",
      this.dataDir,
      "--listen",
      `127.0.0.1:${this.port}`,
      "--log-level",
      "warn",
    ];
    const child = spawn(process.execPath, [BIN, ...args, ...extra], { stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new DemoFailure(`the server did not start:\n${out}`)), 45_000);
      child.stdout?.on("data", () => {
        if (/listening on/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new DemoFailure(`the server exited with ${code}:\n${out}`));
      });
    });
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.removeAllListeners("exit");
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  }
}
