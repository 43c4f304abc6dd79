/**
 * The accounting-of-disclosures rendering: only key uses are listed, and
 * values that come from requests cannot break out of CSV cells, spreadsheet
 * formulas or HTML.
 */
import { describe, expect, it } from "vitest";
import {
  disclosures,
  disclosuresCsv,
  disclosuresHtml,
  disclosuresText,
} from "../../src/audit/disclosures.js";
import type { AuditEvent } from "../../src/audit/event.js";

const ev = (seq: number, extra: Partial<AuditEvent>): AuditEvent => ({
  seq,
  time: `2026-11-24T10:00:0${seq}.000Z`,
  principal: "ehr-store",
  operation: "keys.decrypt",
  decision: "allow",
  key: "ehr-notes",
  keyVersion: 2,
  purpose: "TREAT",
  ...extra,
});

describe("disclosures", () => {
  const events = [
    ev(1, {}),
    ev(2, { operation: "audit.read" }),
    ev(3, { principal: '=HYPERLINK("x"),<script>', decision: "deny", reason: "authentication_failed" }),
  ];

  it("lists key uses only", () => {
    const rows = disclosures(events);
    expect(rows.map((r) => r.operation)).toEqual(["keys.decrypt", "keys.decrypt"]);
    expect(rows[0]).toMatchObject({ key: "ehr-notes", keyVersion: 2, purpose: "TREAT", decision: "allow" });
  });

  it("quotes CSV cells and defuses formulas", () => {
    const csv = disclosuresCsv(disclosures(events)).split("\r\n");
    expect(csv[0]).toBe(
      "time,principal,organisation,key,keyVersion,context,operation,purpose,decision,reason",
    );
    expect(csv[2]).toContain(`"'=HYPERLINK(""x""),<script>"`);
  });

  it("escapes HTML", () => {
    const html = disclosuresHtml(disclosures(events), "Accounting of disclosures");
    expect(html).not.toContain("<script>");
    expect(html).toContain("&lt;script&gt;");
  });

  it("says so when there is nothing", () => {
    expect(disclosuresText([])).toContain("Nothing recorded");
  });
});
