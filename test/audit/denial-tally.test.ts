/**
 * Counted refusals (docs/FORMATS.md §8.4): one event per (source, reason)
 * per flush carrying the count and the first and last time, nothing written
 * when nothing was counted, counts kept when the write fails, the table
 * bounded (new sources counted under `other`), the last counts written at
 * close.
 */
import { describe, expect, it } from "vitest";
import { Auditor } from "../../src/audit/auditor.js";
import { ANONYMOUS_DENIALS_OPERATION, DenialTally } from "../../src/audit/denial-tally.js";
import type { AuditEventInput } from "../../src/audit/event.js";
import type { Store } from "../../src/store/store.js";

function fakeStore() {
  const written: AuditEventInput[][] = [];
  let fail = false;
  const store = {
    appendAudit: async (events: AuditEventInput[]) => {
      if (fail) throw new Error("disk full");
      written.push(events);
    },
  } as unknown as Store;
  return { store, written, failNext: (f: boolean) => (fail = f) };
}

describe("DenialTally", () => {
  it("writes one event per (source, reason) with its count and time span", async () => {
    const { store, written } = fakeStore();
    let t = Date.parse("2026-12-03T10:00:00.000Z");
    const now = () => new Date(t);
    const tally = new DenialTally(new Auditor(store, undefined, now), 1000, undefined, 10, now);
    await tally.flush();
    expect(written).toEqual([]);
    for (let i = 0; i < 250; i++) tally.count("192.0.2.7", "404 not_found");
    t += 5000;
    tally.count("192.0.2.7", "404 not_found");
    tally.count("192.0.2.8", "401 unauthenticated");
    await tally.flush();
    expect(written).toHaveLength(1);
    const events = written[0] ?? [];
    expect(events.map((e) => [e.principal, e.operation, e.decision, e.reason])).toEqual([
      [
        "anonymous",
        ANONYMOUS_DENIALS_OPERATION,
        "deny",
        "251 request(s) from 192.0.2.7 refused 404 not_found between 2026-12-03T10:00:00.000Z and 2026-12-03T10:00:05.000Z",
      ],
      [
        "anonymous",
        ANONYMOUS_DENIALS_OPERATION,
        "deny",
        "1 request(s) from 192.0.2.8 refused 401 unauthenticated between 2026-12-03T10:00:05.000Z and 2026-12-03T10:00:05.000Z",
      ],
    ]);
    await tally.close();
    expect(written).toHaveLength(1); // nothing new
  });

  it("keeps the counts when the write fails, bounds its table, and writes the rest at close", async () => {
    const { store, written, failNext } = fakeStore();
    const tally = new DenialTally(new Auditor(store), 1000, undefined, 2);
    tally.count("a", "404 not_found");
    failNext(true);
    await tally.flush();
    failNext(false);
    tally.count("a", "404 not_found");
    tally.count("b", "404 not_found");
    tally.count("c", "404 not_found"); // past two pairs: counted as "other"
    tally.count("d", "404 not_found");
    await tally.close();
    const reasons = (written[0] ?? []).map((e) => e.reason?.split(" refused")[0]);
    expect(reasons).toEqual(["2 request(s) from a", "1 request(s) from b", "2 request(s) from other"]);
    expect(written).toHaveLength(1);
  });

  it("refuses an interval that would flood the log", () => {
    const { store } = fakeStore();
    expect(() => new DenialTally(new Auditor(store), 10)).toThrow(RangeError);
  });
});
