/**
 * Reading an HTTP body from a peer we do not control, without letting the
 * peer choose how much memory we spend: a declared Content-Length over the
 * limit is refused before a byte is read, and the stream is counted chunk by
 * chunk and abandoned as soon as it passes the limit (a chunked body declares
 * nothing, and a declared length can lie). `Response.arrayBuffer()` and
 * `c.req.arrayBuffer()` would buffer whatever arrives first and check after —
 * which is how a 400 MB body took a share node to 1.3 GB (issue 10, finding
 * 6). Used on both sides: the share node reading requests, and the custos
 * node reading answers from repositories and witnesses (finding 18). Kept
 * below every other folder (it imports nothing from the project) so any
 * layer may use it.
 */

/** The body is (or declares itself) larger than the reader accepts. */
export class BodyTooLargeError extends RangeError {
  constructor(
    readonly what: string,
    readonly limit: number,
    readonly declared?: number,
  ) {
    super(
      declared === undefined
        ? `${what} is larger than ${limit} bytes; stopped reading it`
        : `${what} declares ${declared} bytes, more than the ${limit} accepted`,
    );
    this.name = "BodyTooLargeError";
  }
}

/**
 * The Content-Length header as a number; undefined when absent; throws
 * BodyTooLargeError when it exceeds `limit`. A malformed value counts as
 * absent: the streaming count still applies.
 */
export function checkDeclaredLength(header: string | null | undefined, limit: number, what: string): void {
  if (header === null || header === undefined || !/^[0-9]+$/.test(header.trim())) return;
  const declared = Number(header.trim());
  if (declared > limit) throw new BodyTooLargeError(what, limit, declared);
}

export interface BoundedReadOptions {
  /** Included in the error: which peer and which answer, e.g. "the answer of share node a.example". */
  what: string;
  /** The Content-Length the peer declared, checked before reading. */
  declaredLength?: string | null | undefined;
  /**
   * "cancel" (default) tears the stream down past the limit — right for an
   * answer we fetched, it aborts the connection. "release" only stops reading
   * — right for a request a server still has to answer (cancelling a Node
   * request stream destroys the socket the refusal would go out on); the
   * server then closes the connection after answering.
   */
  onExceed?: "cancel" | "release";
}

/** Reads `body` whole if it is at most `limit` bytes; throws BodyTooLargeError as soon as it is not. */
export async function readBounded(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  options: BoundedReadOptions,
): Promise<Uint8Array> {
  if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError("limit must be a byte count");
  try {
    checkDeclaredLength(options.declaredLength, limit, options.what);
  } catch (err) {
    if (options.onExceed !== "release") await body?.cancel().catch(() => undefined);
    throw err;
  }
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      if (options.onExceed === "release") reader.releaseLock();
      else await reader.cancel().catch(() => undefined);
      throw new BodyTooLargeError(options.what, limit);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Discards an answer's body without reading it (frees the connection; never throws). */
export async function discardBody(body: ReadableStream<Uint8Array> | null): Promise<void> {
  await body?.cancel().catch(() => undefined);
}
