/**
 * readBounded and checkDeclaredLength (src/net/bounded-read.ts): a body of
 * exactly the limit passes, one byte more fails in either form, a lying or
 * malformed Content-Length does not get past the count, and "cancel" tears
 * the stream down while "release" leaves it to its owner.
 */
import { describe, expect, it } from "vitest";
import { BodyTooLargeError, checkDeclaredLength, readBounded } from "../../src/net/bounded-read.js";

function stream(chunks: number[], onCancel?: () => void): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const n = chunks[i++];
      if (n === undefined) controller.close();
      else controller.enqueue(new Uint8Array(n).fill(i));
    },
    cancel: () => onCancel?.(),
  });
}

describe("readBounded", () => {
  it("returns a body of exactly the limit, joined from its chunks", async () => {
    const out = await readBounded(stream([3, 4, 3]), 10, { what: "x" });
    expect(out).toEqual(new Uint8Array([1, 1, 1, 2, 2, 2, 2, 3, 3, 3]));
    expect(await readBounded(null, 10, { what: "x" })).toEqual(new Uint8Array(0));
  });

  it("stops one byte past the limit and cancels the stream, naming what it read", async () => {
    let cancelled = false;
    const err = await readBounded(
      stream([6, 5, 1000], () => (cancelled = true)),
      10,
      { what: "the answer of p" },
    )
      .then(() => null)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BodyTooLargeError);
    expect((err as Error).message).toBe("the answer of p is larger than 10 bytes; stopped reading it");
    expect(cancelled).toBe(true);
  });

  it("with release, leaves the stream uncancelled for a server that must still answer", async () => {
    let cancelled = false;
    const s = stream([11], () => (cancelled = true));
    await expect(readBounded(s, 10, { what: "x", onExceed: "release" })).rejects.toThrow(BodyTooLargeError);
    expect(cancelled).toBe(false);
    expect(s.locked).toBe(false);
  });

  it("refuses a declared length over the limit before reading; a short lie is still counted", async () => {
    let cancelled = false;
    await expect(
      readBounded(
        stream([1], () => (cancelled = true)),
        10,
        { what: "x", declaredLength: "11" },
      ),
    ).rejects.toThrow("x declares 11 bytes, more than the 10 accepted");
    expect(cancelled).toBe(true);
    await expect(readBounded(stream([20]), 10, { what: "x", declaredLength: "5" })).rejects.toThrow(
      "larger than 10 bytes",
    );
    await expect(readBounded(stream([20]), 10, { what: "x", declaredLength: "1e9" })).rejects.toThrow(
      "larger than 10 bytes",
    );
  });

  it("checkDeclaredLength ignores absent or malformed values and refuses larger ones", async () => {
    expect(() => checkDeclaredLength(undefined, 10, "x")).not.toThrow();
    expect(() => checkDeclaredLength("-1", 10, "x")).not.toThrow();
    expect(() => checkDeclaredLength("10", 10, "x")).not.toThrow();
    expect(() => checkDeclaredLength("11", 10, "x")).toThrow(BodyTooLargeError);
    expect(() => checkDeclaredLength("99999999999999999999", 10, "x")).toThrow(BodyTooLargeError);
    await expect(readBounded(null, -1, { what: "x" })).rejects.toThrow(RangeError);
  });
});
