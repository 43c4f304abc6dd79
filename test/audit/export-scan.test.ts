/**
 * The byte-level export reader (export-scan.ts) against the plain one: on
 * exports whose events hold quotes, backslashes, non-ASCII text, control
 * characters (written as \uXXXX, so those lines take the JSON.parse route),
 * CRLF line ends, blank lines and other key orders, it gives the same event
 * count, last hash and roots as verifyLog over the parsed events; it refuses
 * a broken chain (null, so the caller explains it), a file that is not
 * UTF-8, and a line that is not JSON.
 */
import { describe, expect, it } from "vitest";
import { appendEvent, type ChainHead, GENESIS_HASH } from "../../src/audit/chain.js";
import type { ChainedAuditEvent } from "../../src/audit/event.js";
import { ExportLineError, scanExport } from "../../src/audit/export-scan.js";
import { leafHash, treeHead } from "../../src/audit/merkle.js";

const REASONS = [
  'say "hi"',
  "back\\slash / slash",
  "é ünï 😀 中文",
  "ctl\u0001\u001f",
  "nl\nt\tcr\r\b\f",
  "",
];

function log(n: number): ChainedAuditEvent[] {
  let head: ChainHead = { seq: 0, hash: GENESIS_HASH };
  const out: ChainedAuditEvent[] = [];
  for (let i = 0; i < n; i++) {
    const next = appendEvent(head, {
      time: "2026-11-24T10:00:00.000Z",
      principal: `p${i}`,
      operation: i === 3 ? "sys.unseal" : "keys.decrypt",
      decision: "allow",
      reason: REASONS[i % REASONS.length]!,
    });
    out.push(next.chained);
    head = next.head;
  }
  return out;
}

const line = (e: ChainedAuditEvent) =>
  JSON.stringify({ seq: e.event.seq, hash: e.hash, canonical: e.canonical });
const file = (lines: string[]) => Buffer.from(`HEADER\n${lines.join("\n")}\n`);
const root = (events: ChainedAuditEvent[], n: number) =>
  treeHead(events.slice(0, n).map((e) => leafHash(Buffer.from(e.canonical, "utf8"))));

describe("scanExport", () => {
  const events = log(37);
  const lines = events.map(line);

  it("reads every line shape as JSON.parse would, with the same roots", () => {
    const odd = [...lines];
    odd[5] = `${odd[5]}\r`; // CRLF
    odd[6] = JSON.stringify({ canonical: events[6]!.canonical, hash: events[6]!.hash, seq: 7 }); // other key order
    odd[7] = odd[7]!.replace('"seq":8', '"seq":8.0'); // not plain digits
    odd[3] = odd[3]!.replace("sys.unseal", "sys\\u002eunseal"); // spelt with an escape: JSON.parse route
    odd.splice(9, 0, ""); // a blank line
    const buf = file(odd);
    const scan = scanExport(buf, buf.indexOf("\n") + 1, 32, new Set([1, 5, 16, 37, 99]));
    expect(scan).not.toBeNull();
    expect(scan!.events).toBe(37);
    expect(scan!.lastHash).toBe(events[36]!.hash);
    expect(scan!.signedRoot).toEqual(root(events, 32));
    expect([...scan!.roots.keys()].sort((a, b) => a - b)).toEqual([1, 5, 16, 37]);
    for (const [n, r] of scan!.roots) expect(r).toEqual(root(events, n));
    expect(scan!.unseals.map((u) => u.canonical)).toEqual([events[3]!.canonical]);
  });

  it("returns null on a broken chain, a head beyond the log gives no root", () => {
    const altered = lines.map((l, i) => (i === 10 ? l.replace("p10", "p1O") : l));
    const a = file(altered);
    expect(scanExport(a, a.indexOf("\n") + 1, 37)).toBeNull();
    const swapped = [...lines];
    [swapped[2], swapped[3]] = [swapped[3]!, swapped[2]!];
    const s = file(swapped);
    expect(scanExport(s, s.indexOf("\n") + 1, 37)).toBeNull();
    const t = file(lines.slice(0, 20));
    expect(scanExport(t, t.indexOf("\n") + 1, 37)?.signedRoot).toBeNull();
  });

  it("leaves a file that is not UTF-8 to the plain reader, and names a line that is not JSON", () => {
    const bad = Buffer.concat([file(lines.slice(0, 3)), Buffer.from([0xff, 0x0a])]);
    expect(scanExport(bad, bad.indexOf("\n") + 1, 0)).toBeNull();
    const notJson = file([...lines.slice(0, 3), '{"seq":4,"hash":']);
    expect(() => scanExport(notJson, notJson.indexOf("\n") + 1, 0)).toThrow(ExportLineError);
    try {
      scanExport(notJson, notJson.indexOf("\n") + 1, 0);
    } catch (err) {
      expect((err as ExportLineError).line).toBe(5);
    }
  });
});
