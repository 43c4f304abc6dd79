/**
 * Verifies an audit export (docs/FORMATS.md §8.2) straight from the file's
 * bytes, for `custos audit verify --export` over millions of events. Reading
 * the file as one string, splitting it and JSON.parse of every line cost more
 * than the check itself (bench/RESULTS.md); here each event line is matched
 * against the one shape `custos audit export` writes,
 *
 *   {"seq":<digits>,"hash":"<64 lowercase hex>","canonical":"<JSON string>"}
 *
 * (the hash's 64 bytes are taken as they are: unless they equal the
 * recomputed hex digest the chain breaks) and the canonical text is unescaped byte by byte into LogFold's scratch
 * buffer, so what is hashed is exactly the UTF-8 text JSON.parse would have
 * given. The unescaper knows only the escapes JSON.stringify writes for
 * canonical JSON (\" \\ \/ \b \f \n \r \t); a line with anything else —
 * \uXXXX, a raw control byte, another key order, CRLF, a seq that is not
 * plain digits — is handed to JSON.parse as before, so the shortcut decides
 * nothing by itself. A file that is not valid UTF-8 is not scanned at all
 * (the caller reads it the old way, replacement characters and all).
 *
 * It answers only "intact": when the chain breaks it returns null and the
 * caller runs the ordinary reader and verifyLog, which name the first bad
 * event and its kind from the parsed events; a broken log is not the case to
 * make fast.
 */
import { isUtf8 } from "node:buffer";
import { EVENT_AT, LogFold } from "./verify-log.js";

export interface ExportScan {
  /** Non-empty lines after the header. */
  events: number;
  /** The last event's stored chain hash. */
  lastHash: string | null;
  /** Root of the first `size` events of the header's head, or null if there are fewer. */
  signedRoot: Uint8Array | null;
  /** Roots at the requested sizes (those the log reaches). */
  roots: ReadonlyMap<number, Uint8Array>;
  /** Events whose text mentions `sys.unseal` (a superset of the unseal ceremony's), with their hashes. */
  unseals: { canonical: string; hash: string }[];
}

/** A line that is not the export's shape and not JSON either, or lacks canonical/hash: `line` is 1-based. */
export class ExportLineError extends Error {
  constructor(
    readonly line: number,
    readonly reason: "not_json" | "not_event",
  ) {
    super(`line ${line}: ${reason === "not_json" ? "not JSON" : "an event line needs canonical and hash"}`);
  }
}

const PREFIX = Buffer.from('{"seq":');
const MIDDLE = Buffer.from(',"hash":"');
const TAIL = Buffer.from('","canonical":"');
const UNSEAL = Buffer.from("sys.unseal");
const NL = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** JSON's one-letter escapes (those JSON.stringify writes, and \/), by the letter's byte. */
const ESCAPES = new Int16Array(128).fill(-1);
for (const [c, b] of [
  ['"', 0x22],
  ["\\", 0x5c],
  ["/", 0x2f],
  ["b", 0x08],
  ["f", 0x0c],
  ["n", 0x0a],
  ["r", 0x0d],
  ["t", 0x09],
] as const) {
  ESCAPES[c.charCodeAt(0)] = b;
}

function startsWith(buf: Buffer, at: number, what: Buffer): boolean {
  if (at + what.length > buf.length) return false;
  for (let i = 0; i < what.length; i++) if (buf[at + i] !== what[i]) return false;
  return true;
}

/**
 * The body of the file after its header line (`from`), verified against a
 * head of `size` events. Returns null when the file is not UTF-8 or the chain
 * breaks (the caller then takes the slow, explaining path).
 */
export function scanExport(
  buf: Buffer,
  from: number,
  size: number,
  rootSizes: ReadonlySet<number> = new Set(),
): ExportScan | null {
  if (!isUtf8(buf)) return null;
  const fold = new LogFold(size, rootSizes);
  const unseals: ExportScan["unseals"] = [];
  let nextUnseal = buf.indexOf(UNSEAL, from);
  let lastHash: string | null = null;
  let lineNo = 1; // the header's
  for (let start = from; start < buf.length; ) {
    if (buf[start] === NL) {
      start++;
      continue;
    }
    lineNo++;
    // The fast shape finds its own line end (a raw newline inside a string stops it).
    let end = -1;
    let at = -1; // where the event ends in the scratch buffer, or -1: take the line through JSON.parse
    let storedHash = "";
    const hashAt = fastHashAt(buf, start);
    if (hashAt >= 0) {
      storedHash = buf.toString("latin1", hashAt, hashAt + 64);
      const r = unescapeInto(fold, buf, hashAt + 64 + TAIL.length);
      if (r >= 0) {
        at = r;
        end = unescapedEnd;
      }
    }
    // On the fast shape the raw bytes hold "sys.unseal" exactly when the
    // canonical text does (no one-letter escape makes a letter or a dot);
    // a line read by JSON.parse may spell it with \u escapes: ask its text.
    let unseal = nextUnseal >= 0 && nextUnseal < end;
    if (at < 0) {
      end = buf.indexOf(NL, start);
      if (end < 0) end = buf.length;
      const row = parseLine(buf.toString("utf8", start, end), lineNo);
      storedHash = row.hash;
      unseal = row.canonical.includes("sys.unseal");
      const scratch = fold.room(row.canonical.length * 3);
      at = EVENT_AT + scratch.write(row.canonical, EVENT_AT, "utf8");
    }
    if (nextUnseal >= 0 && nextUnseal < end) nextUnseal = buf.indexOf(UNSEAL, end);
    if (unseal) unseals.push({ canonical: fold.room(0).toString("utf8", EVENT_AT, at), hash: storedHash });
    fold.add(at, storedHash);
    if (fold.brokenAt >= 0) return null;
    lastHash = storedHash;
    start = end + 1;
  }
  return { events: fold.count, lastHash, signedRoot: fold.signedRoot, roots: fold.roots, unseals };
}

/** Where the 64 hex digits start if the line opens with the fixed shape up to the canonical string, else -1. */
function fastHashAt(buf: Buffer, start: number): number {
  if (!startsWith(buf, start, PREFIX)) return -1;
  let i = start + PREFIX.length;
  const digits = i;
  while (i < buf.length && buf[i]! >= 0x30 && buf[i]! <= 0x39) i++;
  // JSON numbers: "0" or no leading zero.
  if (i === digits || (buf[digits] === 0x30 && i - digits > 1)) return -1;
  if (!startsWith(buf, i, MIDDLE)) return -1;
  i += MIDDLE.length;
  // The 64 bytes are not checked to be hex here: they are compared with a
  // computed hex digest, and anything else (a quote, a backslash) breaks the
  // chain and sends the file to the plain reader.
  if (!startsWith(buf, i + 64, TAIL)) return -1;
  return i;
}

/** Byte classes inside a JSON string: 0 copied as is, 1 the closing quote, 2 an escape, 3 not allowed raw. */
const CLASS = new Uint8Array(256);
CLASS.fill(3, 0, 0x20);
CLASS[QUOTE] = 1;
CLASS[BACKSLASH] = 2;

/** Set by unescapeInto: the offset of the line's end (its newline, or the end of the file). */
let unescapedEnd = 0;

/**
 * Unescapes the JSON string starting at `from` (after its opening quote) into
 * the fold's scratch buffer at EVENT_AT; the string must close with `"}` and
 * then the line must end. Returns the end of the event in the scratch
 * buffer, or -1 for anything outside the fast shape.
 */
function unescapeInto(fold: LogFold, buf: Buffer, from: number): number {
  let out = fold.room(4096);
  let o = EVENT_AT;
  let i = from;
  const n = buf.length;
  for (; i < n; i++) {
    const b = buf[i]!;
    const c = CLASS[b]!;
    if (o >= out.length) out = fold.room(2 * (o - EVENT_AT));
    if (c === 0) out[o++] = b;
    else if (c === 1) break;
    else if (c === 3) return -1;
    else {
      const e = ESCAPES[buf[++i]! & 0x7f]!;
      if (e < 0 || buf[i]! > 0x7f) return -1;
      out[o++] = e;
    }
  }
  // The closing quote, then "}", then the newline or the end of the file.
  if (i >= n || buf[i + 1] !== 0x7d || (i + 2 < n && buf[i + 2] !== NL)) return -1;
  unescapedEnd = i + 2;
  return o;
}

function parseLine(line: string, lineNo: number): { canonical: string; hash: string } {
  let row: { canonical?: unknown; hash?: unknown } | null;
  try {
    row = JSON.parse(line) as typeof row;
  } catch {
    throw new ExportLineError(lineNo, "not_json");
  }
  if (typeof row?.canonical !== "string" || typeof row.hash !== "string") {
    throw new ExportLineError(lineNo, "not_event");
  }
  return { canonical: row.canonical, hash: row.hash };
}
