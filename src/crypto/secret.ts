/**
 * Secret bytes (keys, shares, key-encryption keys) travel in this type and
 * never as a bare Uint8Array, for two reasons. First, nothing can print them by
 * accident: `toString`, `toJSON` and Node's `util.inspect` all give
 * `Secret(<n> bytes)`, and the bytes sit in a private field that neither
 * `JSON.stringify`, `console.log` nor a structured clone can reach. Second,
 * every read is an explicit call to `reveal()`, so `grep -rn "reveal()"` lists
 * every place secret bytes are used. `dispose()` zeroes the bytes; a disposed
 * secret refuses to reveal. This is hygiene, not a guarantee: JavaScript can
 * copy memory behind our back (garbage collector moves, library-internal
 * copies), which the README's security considerations say plainly.
 */
import { abytes, aint, randomBytes } from "./bytes.js";

const INSPECT = Symbol.for("nodejs.util.inspect.custom");

export class Secret {
  #bytes: Uint8Array;
  #length: number;
  #disposed = false;

  private constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#length = bytes.length;
  }

  /** Wraps `bytes` without copying: the Secret owns them from now on and zeroes them on dispose. */
  static of(bytes: Uint8Array): Secret {
    abytes(bytes, "bytes");
    return new Secret(bytes);
  }

  /** `n` bytes from the CSPRNG. */
  static random(n: number): Secret {
    aint(n, "n", 1, 65536);
    return new Secret(randomBytes(n));
  }

  get length(): number {
    return this.#length;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** The secret bytes themselves (not a copy). The only way to read them; do not keep the reference. */
  reveal(): Uint8Array {
    if (this.#disposed) throw new Error("secret used after dispose()");
    return this.#bytes;
  }

  /** Zeroes the bytes. Idempotent. */
  dispose(): void {
    this.#bytes.fill(0);
    this.#disposed = true;
  }

  toString(): string {
    return `Secret(${this.#length} bytes)`;
  }

  toJSON(): string {
    return this.toString();
  }

  [INSPECT](): string {
    return this.toString();
  }
}
