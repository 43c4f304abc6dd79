// The checks a store makes before queuing a write: one negative case per branch.
import { describe, expect, it } from "vitest";
import type { AuditEventInput } from "../../src/audit/event.js";
import type { KeyPatch } from "../../src/store/store.js";
import { checkEvent, checkEvents, checkNewKey, checkPatch } from "../../src/store/validate.js";
import { ev, key, version } from "./contract.js";

const bad = (e: Record<string, unknown>): AuditEventInput => ({ ...ev(), ...e }) as AuditEventInput;

describe("checkEvent", () => {
  it("accepts a full event and ignores fields the chain drops", () => {
    expect(() =>
      checkEvent(bad({ key: "k", keyVersion: 2, context: { a: "b" }, extra: new Date() })),
    ).not.toThrow();
  });

  it.each([
    ["not an object", null, TypeError],
    ["a missing time", bad({ time: undefined }), TypeError],
    ["an empty principal", bad({ principal: "" }), RangeError],
    ["a numeric operation", bad({ operation: 5 }), TypeError],
    ["an unknown decision", bad({ decision: "maybe" }), RangeError],
    ["a numeric reason", bad({ reason: 1 }), TypeError],
    ["a zero keyVersion", bad({ keyVersion: 0 }), RangeError],
    ["a fractional keyVersion", bad({ keyVersion: 1.5 }), RangeError],
    ["a context that is not an object", bad({ context: "x" }), TypeError],
    ["a non-string context value", bad({ context: { a: 1 } }), TypeError],
  ])("refuses %s", (_label, e, error) => {
    expect(() => checkEvent(e as AuditEventInput)).toThrow(error);
  });

  it("names the failing event in a list", () => {
    expect(() => checkEvents([ev(), bad({ decision: "nope" })])).toThrow(/events\[1\]\.decision/);
    expect(() => checkEvents("x" as unknown as AuditEventInput[])).toThrow(TypeError);
  });
});

describe("checkNewKey", () => {
  it("accepts a key with its first version", () => {
    expect(() => checkNewKey(key("k"), version("k", 1))).not.toThrow();
  });

  it.each([
    ["a version of another key", key("k"), version("j", 1)],
    ["a first version other than 1", { ...key("k"), latestVersion: 2 }, version("k", 2)],
    ["a latestVersion that is not the first version", { ...key("k"), latestVersion: 2 }, version("k", 1)],
    ["an empty name", key(""), version("", 1)],
    [
      "material that is not bytes",
      key("k"),
      { ...version("k", 1), sealedMaterial: [1] as unknown as Uint8Array },
    ],
  ])("refuses %s", (_label, k, v) => {
    expect(() => checkNewKey(k, v)).toThrow();
  });
});

describe("checkPatch", () => {
  it.each<[string, KeyPatch]>([
    ["a zero minDecryptionVersion", { minDecryptionVersion: 0 }],
    ["a negative rotation period", { rotationPeriodSeconds: -1 }],
  ])("refuses %s", (_label, patch) => {
    expect(() => checkPatch(patch)).toThrow(RangeError);
  });

  it("accepts null to clear the rotation period", () => {
    expect(() => checkPatch({ rotationPeriodSeconds: null })).not.toThrow();
  });
});
