/** The field a FormatError names, for tests that check a parser refuses each field by name. */
import { expect } from "vitest";
import { FormatError } from "../../src/custody/format-error.js";

export function formatField(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(FormatError);
    return (err as FormatError).field;
  }
  throw new Error("no FormatError thrown");
}
