/**
 * Explicit big-endian codecs for TPM 2.0 wire structures (Part 1 §18, Part 2
 * §10 for TPM2B). A `TpmWriter` grows as it goes; a `TpmReader` reads inside
 * fixed bounds and throws `TpmFormatError` naming the field on anything short,
 * oversize or left over, so a parse never reads past its buffer and never
 * accepts a length the spec does not allow. Every TPM2B read takes the
 * structure's maximum size.
 */
import { concatBytes } from "../crypto/bytes.js";

/** A TPM structure that is too short, too long, or holds a value the spec does not allow. */
export class TpmFormatError extends Error {
  override name = "TpmFormatError";
}

export class TpmWriter {
  #chunks: Uint8Array[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  bytes(b: Uint8Array): this {
    this.#chunks.push(b);
    this.#length += b.length;
    return this;
  }

  u8(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`u8 out of range: ${v}`);
    return this.bytes(Uint8Array.of(v));
  }

  u16(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`u16 out of range: ${v}`);
    return this.bytes(Uint8Array.of(v >>> 8, v & 0xff));
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`u32 out of range: ${v}`);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v);
    return this.bytes(b);
  }

  /** A TPM2B: u16 size then the bytes; `max` is the structure's limit, `what` names it in errors. */
  tpm2b(b: Uint8Array, max: number, what: string): this {
    if (b.length > max) throw new TpmFormatError(`${what}: ${b.length} bytes exceeds its limit of ${max}`);
    return this.u16(b.length).bytes(b);
  }

  finish(): Uint8Array {
    const out = concatBytes(...this.#chunks);
    this.#chunks = [out];
    return out;
  }
}

export class TpmReader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  #pos: number;
  readonly #end: number;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    if (start < 0 || end > buf.length || start > end)
      throw new RangeError("reader bounds outside the buffer");
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#pos = start;
    this.#end = end;
  }

  get offset(): number {
    return this.#pos;
  }

  get remaining(): number {
    return this.#end - this.#pos;
  }

  #need(n: number, what: string): void {
    // A negative count would move the reader backwards over bytes already parsed.
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`${what}: byte count ${n} is not a count`);
    if (this.#end - this.#pos < n) {
      throw new TpmFormatError(`${what}: needs ${n} bytes, ${this.#end - this.#pos} left`);
    }
  }

  u8(what: string): number {
    this.#need(1, what);
    return this.#view.getUint8(this.#pos++);
  }

  u16(what: string): number {
    this.#need(2, what);
    const v = this.#view.getUint16(this.#pos);
    this.#pos += 2;
    return v;
  }

  u32(what: string): number {
    this.#need(4, what);
    const v = this.#view.getUint32(this.#pos);
    this.#pos += 4;
    return v;
  }

  /** `n` bytes, copied out of the buffer. */
  bytes(n: number, what: string): Uint8Array {
    this.#need(n, what);
    const out = this.#buf.slice(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** A TPM2B's contents; refuses a size above `max`. */
  tpm2b(max: number, what: string): Uint8Array {
    const size = this.u16(`${what}.size`);
    if (size > max) throw new TpmFormatError(`${what}: size ${size} exceeds its limit of ${max}`);
    return this.bytes(size, what);
  }

  /** A reader over the next `n` bytes; this reader skips past them. */
  sub(n: number, what: string): TpmReader {
    this.#need(n, what);
    const r = new TpmReader(this.#buf, this.#pos, this.#pos + n);
    this.#pos += n;
    return r;
  }

  /** Throws unless every byte was consumed: trailing bytes mean a misparse or a forged length. */
  done(what: string): void {
    if (this.#pos !== this.#end)
      throw new TpmFormatError(`${what}: ${this.#end - this.#pos} unexpected trailing bytes`);
  }
}

/** Marshals with a fresh writer. */
export function marshal(fn: (w: TpmWriter) => void): Uint8Array {
  const w = new TpmWriter();
  fn(w);
  return w.finish();
}

/** Parses all of `buf` with `fn`, refusing trailing bytes. */
export function unmarshal<T>(buf: Uint8Array, what: string, fn: (r: TpmReader) => T): T {
  const r = new TpmReader(buf);
  const v = fn(r);
  r.done(what);
  return v;
}
