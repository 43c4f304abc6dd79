/**
 * How command bytes reach a TPM: one seam, `send(command) → response`, with
 * two implementations. `SwtpmTransport` speaks swtpm's TCP command port in
 * the Microsoft simulator framing (u32 TPM_SEND_COMMAND=8, u8 locality,
 * u32 length, command; reply u32 length, response, u32 trailer), keeping one
 * connection open and reconnecting on the next command after a failure.
 * `DeviceTransport` writes to and reads from the kernel's resource manager,
 * `/dev/tpmrm0`. Neither queues: the client owns the connection and sends one
 * command at a time (swtpm serves one TCP client, and a TPM one command).
 */
import { type FileHandle, open } from "node:fs/promises";
import { Socket } from "node:net";
import { LIMITS } from "./constants.js";
import { TpmUnavailableError } from "./rc.js";

export interface Transport {
  send(command: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

const TPM_SEND_COMMAND = 8;

export interface SwtpmOptions {
  host: string;
  port: number;
  /** Milliseconds to wait for a connection or a reply before giving up on it. */
  timeoutMs?: number;
}

export class SwtpmTransport implements Transport {
  readonly #host: string;
  readonly #port: number;
  readonly #timeoutMs: number;
  #socket: Socket | null = null;
  #busy = false;
  #pending: {
    resolve: (b: Uint8Array) => void;
    reject: (e: Error) => void;
    chunks: Buffer[];
    length: number;
  } | null = null;

  constructor({ host, port, timeoutMs = 10_000 }: SwtpmOptions) {
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new RangeError(`swtpm port ${port} is not a port`);
    this.#host = host;
    this.#port = port;
    this.#timeoutMs = timeoutMs;
  }

  toString(): string {
    return `swtpm:${this.#host}:${this.#port}`;
  }

  async #connect(): Promise<Socket> {
    if (this.#socket && !this.#socket.destroyed) return this.#socket;
    const socket = new Socket();
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new TpmUnavailableError(`${this}: no connection within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      socket.once("error", (err) => {
        clearTimeout(timer);
        reject(new TpmUnavailableError(`${this}: cannot connect: ${err.message}`));
      });
      socket.connect(this.#port, this.#host, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    socket.removeAllListeners("error");
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", (err) => this.#fail(new TpmUnavailableError(`${this}: ${err.message}`)));
    socket.on("close", () => {
      if (this.#socket === socket) this.#socket = null;
      this.#fail(new TpmUnavailableError(`${this}: connection closed`));
    });
    this.#socket = socket;
    return socket;
  }

  #fail(err: Error): void {
    const p = this.#pending;
    this.#pending = null;
    p?.reject(err);
  }

  #onData(chunk: Buffer): void {
    const p = this.#pending;
    if (!p) {
      // Bytes nobody asked for: the stream is out of step; start over.
      this.#socket?.destroy();
      return;
    }
    p.chunks.push(chunk);
    p.length += chunk.length;
    if (p.length < 4) return;
    const all = Buffer.concat(p.chunks);
    p.chunks = [all];
    const size = all.readUInt32BE(0);
    if (size < 10 || size > LIMITS.response) {
      this.#socket?.destroy();
      this.#fail(new TpmUnavailableError(`${this}: reply length ${size} is not a TPM response`));
      return;
    }
    if (all.length < 4 + size + 4) return;
    this.#pending = null;
    if (all.length > 4 + size + 4) {
      this.#socket?.destroy();
      p.reject(new TpmUnavailableError(`${this}: reply longer than announced`));
      return;
    }
    p.resolve(new Uint8Array(all.subarray(4, 4 + size)));
  }

  async send(command: Uint8Array): Promise<Uint8Array> {
    // Checked and set before the first await: a second send() made while the
    // first is still connecting must be refused, not given its own socket or
    // allowed to overwrite the first one's pending reply.
    if (this.#busy) throw new Error("SwtpmTransport.send: one command at a time");
    this.#busy = true;
    try {
      return await this.#roundTrip(command);
    } finally {
      this.#busy = false;
    }
  }

  async #roundTrip(command: Uint8Array): Promise<Uint8Array> {
    const socket = await this.#connect();
    const frame = Buffer.alloc(9 + command.length);
    frame.writeUInt32BE(TPM_SEND_COMMAND, 0);
    frame.writeUInt8(0, 4);
    frame.writeUInt32BE(command.length, 5);
    frame.set(command, 9);
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        this.#fail(new TpmUnavailableError(`${this}: no reply within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      this.#pending = {
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
        chunks: [],
        length: 0,
      };
      socket.write(frame);
    });
  }

  async close(): Promise<void> {
    const s = this.#socket;
    this.#socket = null;
    if (s && !s.destroyed) await new Promise<void>((resolve) => s.end(resolve));
    s?.destroy();
  }
}

/** The Linux TPM resource manager (`/dev/tpmrm0`): one write is one command, one read one response. */
export class DeviceTransport implements Transport {
  readonly #path: string;
  #fh: FileHandle | null = null;

  constructor(path = "/dev/tpmrm0") {
    this.#path = path;
  }

  toString(): string {
    return `device:${this.#path}`;
  }

  async send(command: Uint8Array): Promise<Uint8Array> {
    try {
      this.#fh ??= await open(this.#path, "r+");
      await this.#fh.write(command, 0, command.length, null);
      const buf = new Uint8Array(LIMITS.response);
      const { bytesRead } = await this.#fh.read(buf, 0, buf.length, null);
      return buf.slice(0, bytesRead);
    } catch (err) {
      const fh = this.#fh;
      this.#fh = null;
      await fh?.close().catch(() => {});
      throw new TpmUnavailableError(`${this}: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = null;
    await fh?.close();
  }
}

/**
 * Parses a TPM address: `swtpm:HOST:PORT` or `device:/dev/tpmrm0`
 * (the forms CUSTOS_TPM and `--tpm` take).
 */
export function transportFromAddress(address: string): Transport {
  const swtpm = /^swtpm:([^:]+):(\d{1,5})$/.exec(address);
  if (swtpm) return new SwtpmTransport({ host: swtpm[1] as string, port: Number(swtpm[2]) });
  const device = /^device:(\/[^\0]+)$/.exec(address);
  if (device) return new DeviceTransport(device[1] as string);
  throw new RangeError(`TPM address "${address}" is neither swtpm:HOST:PORT nor device:/PATH`);
}
