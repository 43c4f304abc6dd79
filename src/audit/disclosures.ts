/**
 * The accounting of disclosures a hospital owes a patient (HIPAA
 * §164.528): every use of a key on that patient's records — when, who, which
 * organisation, which key, for what purpose, and whether it was allowed —
 * built from audit events already selected by the patient's keyed HMAC. The
 * `context` column shows the context values configured clear (institution,
 * department: whose record it was); the rest of the context is HMACs and
 * says nothing to a reader, so it is left out. The
 * rendering is plain data in four forms; the HTML escapes every value, since
 * principals and reasons come from requests.
 */
import type { AuditEvent } from "./event.js";

const KEY_USES = new Set(["keys.datakey", "keys.encrypt", "keys.decrypt", "keys.rewrap"]);

export interface DisclosureRow {
  time: string;
  principal: string;
  /** The principal's organisation, once identities carry one (policy issue); "-" until then. */
  organisation: string;
  key: string;
  keyVersion: number | null;
  /** The event's clear context, `k=v` joined by "; " in key order; "-" when none. */
  context: string;
  operation: string;
  purpose: string;
  decision: string;
  reason: string;
}

export function disclosures(events: readonly AuditEvent[]): DisclosureRow[] {
  return accessRows(events.filter((e) => KEY_USES.has(e.operation)));
}

/** One row per event, in the same columns (the principal report lists every operation). */
export function accessRows(events: readonly AuditEvent[]): DisclosureRow[] {
  return events.map((e) => ({
    time: e.time,
    principal: e.principal,
    organisation: "-",
    key: e.key ?? "-",
    keyVersion: e.keyVersion ?? null,
    context: clearContext(e),
    operation: e.operation,
    purpose: e.purpose ?? "-",
    decision: e.decision,
    reason: e.reason ?? "",
  }));
}

function clearContext(e: AuditEvent): string {
  const entries = Object.entries(e.clearContext ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length === 0 ? "-" : entries.map(([k, v]) => `${k}=${v}`).join("; ");
}

export type ReportFormat = "text" | "json" | "csv" | "html";

export function renderReport(rows: readonly DisclosureRow[], format: ReportFormat, title: string): string {
  switch (format) {
    case "json":
      return JSON.stringify(rows, null, 2);
    case "csv":
      return disclosuresCsv(rows);
    case "html":
      return disclosuresHtml(rows, title);
    case "text":
      return disclosuresText(rows);
  }
}

const COLUMNS: (keyof DisclosureRow)[] = [
  "time",
  "principal",
  "organisation",
  "key",
  "keyVersion",
  "context",
  "operation",
  "purpose",
  "decision",
  "reason",
];

const cell = (r: DisclosureRow, c: keyof DisclosureRow) => String(r[c] ?? "");

export function disclosuresCsv(rows: readonly DisclosureRow[]): string {
  // RFC 4180 quoting; a leading =, +, - or @ is prefixed so spreadsheets do not run it as a formula.
  const quote = (v: string) => {
    const safe = /^[=+\-@]/.test(v) ? `'${v}` : v;
    return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
  };
  return [COLUMNS.join(","), ...rows.map((r) => COLUMNS.map((c) => quote(cell(r, c))).join(","))].join(
    "\r\n",
  );
}

export function disclosuresText(rows: readonly DisclosureRow[]): string {
  if (rows.length === 0) return "Nothing recorded for this selection.";
  const widths = COLUMNS.map((c) => Math.max(c.length, ...rows.map((r) => cell(r, c).length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(COLUMNS), ...rows.map((r) => line(COLUMNS.map((c) => cell(r, c))))].join("\n");
}

const escapeHtml = (v: string) =>
  v.replace(
    /[&<>"']/g,
    (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!,
  );

export function disclosuresHtml(rows: readonly DisclosureRow[], title: string): string {
  const head = COLUMNS.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const body = rows
    .map((r) => `<tr>${COLUMNS.map((c) => `<td>${escapeHtml(cell(r, c))}</td>`).join("")}</tr>`)
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;text-align:left}</style>
</head><body><h1>${escapeHtml(title)}</h1>
<table><thead><tr>${head}</tr></thead><tbody>
${body}
</tbody></table><p>${rows.length} disclosure(s).</p></body></html>`;
}
