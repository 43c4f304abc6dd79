/**
 * Reads and checks an audit export for `custos audit verify --export FILE`
 * (docs/FORMATS.md §8.2): the header with the signed head, then the events.
 * An intact export is verified straight from the file's bytes in one pass
 * (audit/export-scan.ts) — with a million events, reading the file as one
 * string and parsing every line cost more than the check. Whenever that pass
 * cannot vouch for the file (a broken chain, a file that is not UTF-8) or
 * the caller needs the events themselves (witnesses to compare with), the
 * file is read the plain way and checked by verifyLog, which explains what
 * is wrong. Both read exactly the canonical text that was hashed.
 */
import { readFileSync } from "node:fs";
import type { ChainedAuditEvent } from "../audit/event.js";
import { ExportLineError, scanExport } from "../audit/export-scan.js";
import type { TreeHeadJson } from "../audit/tree-head.js";
import { headAgainstRoot, type LogCheck, verifyLog } from "../audit/verify-log.js";
import { CliError, EXIT } from "./client.js";
import type { LogView, ServedHead } from "./witness-verify.js";

export const EXPORT_FORMAT = "custos-audit-export/v1";

/** An event as the verifier reads it: the text that was hashed, and its chain hash. */
export type LoggedEvent = Pick<ChainedAuditEvent, "canonical" | "hash">;

export interface ExportCheck {
  served: TreeHeadJson | null;
  check: LogCheck;
  /** For the witness checks. */
  log: LogView;
  /** The events the unseal ceremony may be among (all of them, unless the fast pass picked them out). */
  unsealCandidates: LoggedEvent[];
}

const NL = 0x0a;

export function checkExport(
  path: string,
  pinnedKey: Uint8Array | undefined,
  needEvents: boolean,
): ExportCheck {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new CliError(
      `cannot read export '${path}': ${(err as NodeJS.ErrnoException).code ?? err}`,
      EXIT.usage,
    );
  }
  const parse = (line: string, n: number): unknown => {
    try {
      return JSON.parse(line);
    } catch {
      throw new CliError(`${path}:${n}: not JSON`, EXIT.refused);
    }
  };
  let start = 0;
  while (buf[start] === NL) start++;
  let end = buf.indexOf(NL, start);
  if (end < 0) end = buf.length;
  const header = parse(buf.toString("utf8", start, end), 1) as { format?: unknown; head?: ServedHead | null };
  if (header?.format !== EXPORT_FORMAT)
    throw new CliError(`${path}: not a ${EXPORT_FORMAT} file`, EXIT.usage);
  const served = header.head ?? null;
  if (!needEvents) {
    const cosigned = (Array.isArray(served?.cosignatures) ? served.cosignatures : [])
      .map((c) => (c as { size?: unknown })?.size)
      .filter((n): n is number => Number.isSafeInteger(n) && (n as number) >= 1);
    let scan: ReturnType<typeof scanExport>;
    try {
      scan = scanExport(buf, end + 1, served?.size ?? 0, new Set(cosigned));
    } catch (err) {
      if (!(err instanceof ExportLineError)) throw err;
      throw new CliError(
        `${path}:${err.line}: ${err.reason === "not_json" ? "not JSON" : "an event line needs canonical and hash"}`,
        EXIT.refused,
      );
    }
    if (scan !== null) {
      const head = served === null ? null : headAgainstRoot(served, scan.events, scan.signedRoot, pinnedKey);
      return {
        served,
        check: { events: scan.events, chain: { ok: true, head: scan.lastHash }, head },
        log: { count: scan.events, roots: scan.roots },
        unsealCandidates: scan.unseals,
      };
    }
  }
  const lines = buf
    .toString("utf8")
    .split("\n")
    .filter((l) => l.length > 0);
  const events = lines.slice(1).map((line, i) => {
    const row = parse(line, i + 2) as { canonical?: unknown; hash?: unknown } | null;
    if (typeof row?.canonical !== "string" || typeof row.hash !== "string") {
      throw new CliError(`${path}:${i + 2}: an event line needs canonical and hash`, EXIT.refused);
    }
    return { canonical: row.canonical, hash: row.hash };
  });
  return { served, check: verifyLog(events, served, pinnedKey), log: events, unsealCandidates: events };
}
