/**
 * Which context values reach the audit log in the clear: only those of the
 * configured clear keys; identifying keys and every key nobody configured are
 * HMAC'd; a configuration that would store an identifying-looking key in the
 * clear, or a key in both lists, is refused.
 */
import { describe, expect, it } from "vitest";
import {
  auditContextConfig,
  contextHmac,
  DEFAULT_AUDIT_CONTEXT,
  eventContext,
  looksIdentifying,
} from "../../src/audit/audit-context.js";

const key = new Uint8Array(32).fill(7);

describe("audit context configuration", () => {
  it("defaults to patient ids, MRNs and record ids identifying; institution and department clear", () => {
    expect(auditContextConfig()).toEqual({
      identifying: ["patient", "patientId", "mrn", "record", "recordId"],
      clear: ["institution", "department"],
    });
    expect(auditContextConfig({ clear: ["ward"] })).toMatchObject({
      identifying: ["patient", "patientId", "mrn", "record", "recordId"],
      clear: ["ward"],
    });
  });

  it("refuses a key in both lists, an identifying-looking clear key, a malformed key, no identifying key", () => {
    expect(() => auditContextConfig({ identifying: ["patient", "site"], clear: ["site"] })).toThrow(
      /both identifying and clear/,
    );
    for (const k of [
      "patientName",
      "Patient",
      "date_of_birth",
      "dob",
      "ssn",
      "email",
      "encounter-id",
      "recordType",
    ]) {
      expect(() => auditContextConfig({ clear: [k] }), k).toThrow(/looks identifying/);
    }
    expect(() => auditContextConfig({ clear: ["a b"] })).toThrow(/must match/);
    expect(() => auditContextConfig({ identifying: [] })).toThrow(/at least one/);
    expect(looksIdentifying("institution")).toBe(false);
    expect(looksIdentifying("department")).toBe(false);
  });
});

describe("eventContext", () => {
  const context = { patient: "MRN-1", institution: "nyu", department: "cardiology", dob: "1970-01-01" };

  it("keeps clear keys as given and HMACs identifying and unconfigured keys", () => {
    const out = eventContext(DEFAULT_AUDIT_CONTEXT, key, context);
    expect(out.clearContext).toEqual({ institution: "nyu", department: "cardiology" });
    expect(out.context).toEqual({
      patient: contextHmac(key, "patient", "MRN-1"),
      dob: contextHmac(key, "dob", "1970-01-01"),
    });
    expect(JSON.stringify(out)).not.toMatch(/MRN-1|1970/);
  });

  it("follows the configuration: with no clear keys everything is HMAC'd", () => {
    const out = eventContext(auditContextConfig({ clear: [] }), key, context);
    expect(out.clearContext).toBeUndefined();
    expect(Object.keys(out.context ?? {}).sort()).toEqual(["department", "dob", "institution", "patient"]);
    expect(JSON.stringify(out)).not.toMatch(/nyu|cardiology/);
  });

  it("drops the values to HMAC when sealed (no audit key), never storing them clear", () => {
    expect(eventContext(DEFAULT_AUDIT_CONTEXT, null, context)).toEqual({
      clearContext: { institution: "nyu", department: "cardiology" },
    });
    expect(eventContext(DEFAULT_AUDIT_CONTEXT, key, {})).toEqual({ context: {} });
    expect(eventContext(DEFAULT_AUDIT_CONTEXT, key, undefined)).toEqual({});
  });
});
