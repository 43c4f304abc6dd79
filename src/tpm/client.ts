/**
 * The one owner of a TPM connection in the process. swtpm serves one client
 * at a time and a TPM runs one command at a time, so every command goes
 * through this queue; a sequence that must not interleave with others (load
 * an object, use it, flush it) runs inside `exclusive()`. Warnings that mean
 * "ask again" (TPM_RC_RETRY after a restart, TESTING, YIELDED) are retried
 * here with a short back-off, rebuilding the command each time because
 * every attempt needs a fresh nonce.
 */
import { type CommandRequest, type CommandResponse, prepareCommand } from "./command.js";
import { TpmError } from "./rc.js";
import type { Transport } from "./transport.js";

/** Anything that runs TPM commands: the client itself, or the executor handed to an `exclusive` section. */
export interface TpmExec {
  exec(req: CommandRequest): Promise<CommandResponse>;
}

export interface TpmClientOptions {
  /** Attempts for a retryable warning before giving up (default 25). */
  retries?: number;
  /** Called with each command's bytes and its response: tests use it to look at what crossed the bus. */
  tap?: (command: Uint8Array, response: Uint8Array) => void;
}

export class TpmClient implements TpmExec {
  readonly transport: Transport;
  readonly #retries: number;
  readonly #tap: TpmClientOptions["tap"];
  #tail: Promise<unknown> = Promise.resolve();

  constructor(transport: Transport, { retries = 25, tap }: TpmClientOptions = {}) {
    this.transport = transport;
    this.#retries = retries;
    this.#tap = tap;
  }

  /** One command, queued behind any other. */
  exec(req: CommandRequest): Promise<CommandResponse> {
    return this.exclusive((x) => x.exec(req));
  }

  /** Runs `fn` with the TPM to itself: no other command is sent until it settles. */
  exclusive<T>(fn: (x: TpmExec) => Promise<T>): Promise<T> {
    let active = true;
    const x: TpmExec = {
      exec: (req) => {
        if (!active) throw new Error("TPM executor used after its exclusive section ended");
        return this.#send(req);
      },
    };
    const run = this.#tail.then(
      () => fn(x),
      () => fn(x),
    );
    const done = run.finally(() => {
      active = false;
    });
    this.#tail = done.catch(() => {});
    return done;
  }

  async #send(req: CommandRequest): Promise<CommandResponse> {
    for (let attempt = 1; ; attempt++) {
      const prepared = prepareCommand(req);
      const response = await this.transport.send(prepared.bytes);
      this.#tap?.(prepared.bytes, response);
      try {
        return prepared.finish(response);
      } catch (err) {
        if (err instanceof TpmError && err.retryable && attempt < this.#retries) {
          await new Promise((r) => setTimeout(r, Math.min(5 * attempt, 100)));
          continue;
        }
        throw err;
      }
    }
  }

  async close(): Promise<void> {
    await this.#tail;
    await this.transport.close();
  }

  toString(): string {
    return `TpmClient(${this.transport})`;
  }
}
