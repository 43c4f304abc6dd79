/**
 * decide(): deny by default, grants with purposes and context conditions,
 * static SoD at decision time, break-glass with review, approvals (never the
 * requester, eligible, unexpired, distinct organisations) — on the consortium
 * example, then fast-check properties that hold for any policy.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PURPOSES_OF_USE } from "../../src/keys/purpose.js";
import { decide, declaredPrincipal, type PolicyRequest } from "../../src/policy/decide.js";
import { OPERATIONS, type Policy } from "../../src/policy/document.js";
import { parsePolicy } from "../../src/policy/source.js";
import { POLICIES, policy } from "./helpers.js";

const file = join(POLICIES, "examples/consortium.yaml");
const consortium = parsePolicy(readFileSync(file, "utf8"), file).policy!;
const who = (id: string) => declaredPrincipal(consortium, id)!;
const NOW = Date.parse("2026-11-24T12:00:00Z");

/** A decryption by a declared principal, the record's institution in its context. */
const decrypt = (id: string, key: string, purpose: string, institution: string) =>
  decide(consortium, { principal: who(id), operation: "decrypt", key, purpose, context: { institution } });

describe("decide on the consortium policy", () => {
  it("lets a hospital's storage service decrypt its own records for TREAT", () => {
    const d = decrypt("nyu-ehr-store", "ehr-nyu-notes", "TREAT", "nyu");
    expect(d).toMatchObject({ decision: "allow", rule: "grant:store-own-records" });
  });

  it("refuses the storage service another hospital's records (key pattern and institution condition)", () => {
    const other = decrypt("nyu-ehr-store", "ehr-msk-notes", "TREAT", "msk");
    expect(other).toMatchObject({ decision: "deny", rule: "default-deny" });
    expect(decrypt("nyu-ehr-store", "ehr-nyu-notes", "TREAT", "msk").decision).toBe("deny");
  });

  it("grants cross-hospital access for TREAT and refuses a purpose not granted", () => {
    expect(decrypt("dr-wong", "ehr-nyu-notes", "TREAT", "nyu")).toMatchObject({
      decision: "allow",
      rule: "grant:clinicians-consortium-treatment",
    });
    const research = decrypt("dr-wong", "ehr-nyu-notes", "HRESCH", "nyu");
    expect(research).toMatchObject({ decision: "deny", rule: "default-deny" });
    expect(research.reason).toContain("HRESCH");
  });

  it("refuses a data-centre operator every key operation", () => {
    for (const operation of ["datakey", "decrypt", "destroy"] as const) {
      expect(
        decide(consortium, { principal: who("omar"), operation, key: "ehr-nyu-notes", purpose: "TREAT" })
          .decision,
      ).toBe("deny");
    }
  });

  it("allows break-glass ETREAT beyond grants, with a review by a privacy officer", () => {
    const d = decrypt("dr-rossi", "ehr-weill-notes", "ETREAT", "weill");
    expect(d).toMatchObject({
      decision: "allow",
      rule: "break-glass",
      review: { roles: ["privacy-officer"] },
    });
  });

  it("denies a principal holding conflicting roles, naming the pair", () => {
    const d = decide(consortium, {
      principal: { id: "eve", organisation: "nyu", roles: ["custodian", "dc-operator"] },
      operation: "ceremony-unseal",
      purpose: "HSYSADMIN",
    });
    expect(d).toMatchObject({ decision: "deny", rule: "sod:custodian/dc-operator" });
  });

  describe("approvals", () => {
    const destroy = (approvers: string[], at = NOW): PolicyRequest => ({
      principal: who("kim"),
      operation: "destroy",
      key: "ehr-weill-old",
      purpose: "HSYSADMIN",
      now: NOW,
      approvals: approvers.map((id) => ({ principal: who(id), at })),
    });

    it("needs two approvals from two other hospitals before a destruction", () => {
      expect(decide(consortium, destroy([]))).toMatchObject({
        decision: "needs-approval",
        rule: "approval:destroy-two-other-hospitals",
      });
      expect(decide(consortium, destroy(["lee", "jo"]))).toMatchObject({
        decision: "allow",
        rule: "grant:key-admins-own-keys+approval:destroy-two-other-hospitals",
      });
    });

    it("never counts the requester's own approval", () => {
      expect(decide(consortium, destroy(["kim", "lee"])).decision).toBe("needs-approval");
    });

    it("counts one approval per organisation where distinct organisations are required", () => {
      const lee2 = { ...who("lee"), id: "lee-2" };
      const req = destroy(["lee"]);
      const d = decide(consortium, { ...req, approvals: [...req.approvals!, { principal: lee2, at: NOW }] });
      expect(d.decision).toBe("needs-approval");
    });

    it("ignores ineligible and expired approvals", () => {
      expect(decide(consortium, destroy(["lee", "yusuf"])).decision).toBe("needs-approval");
      expect(decide(consortium, destroy(["lee", "jo"], NOW - 25 * 3600_000)).decision).toBe("needs-approval");
      expect(decide(consortium, { ...destroy(["lee", "jo"]), now: undefined }).decision).toBe(
        "needs-approval",
      );
    });
  });

  it("refuses unknown purposes and malformed key names before anything else", () => {
    expect(
      decide(consortium, {
        principal: who("nyu-ehr-store"),
        operation: "decrypt",
        key: "ehr-nyu-x",
        purpose: "FUN",
      }),
    ).toMatchObject({ decision: "deny", rule: "purpose:unknown" });
    expect(
      decide(consortium, {
        principal: who("nyu-ehr-store"),
        operation: "decrypt",
        key: "ehr-*",
        purpose: "TREAT",
      }),
    ).toMatchObject({ decision: "deny", rule: "key:invalid" });
  });
});

describe("decide: properties for any request", () => {
  const principal = fc.record({
    id: fc.constantFrom("alice", "bob", "svc"),
    organisation: fc.constantFrom("nyu", "msk"),
    roles: fc.subarray(["clinician", "ehr-store", "key-admin"], { minLength: 1 }),
  });
  const request = fc.record({
    principal,
    operation: fc.constantFrom(...OPERATIONS),
    key: fc.constantFrom("ehr-nyu-notes", "ehr-msk-labs", "other"),
    purpose: fc.constantFrom(...PURPOSES_OF_USE),
    context: fc.record({ institution: fc.constantFrom("nyu", "msk") }),
  });
  const grant = fc.record({
    roles: fc.subarray(["clinician", "ehr-store", "key-admin"], { minLength: 1 }),
    keys: fc.subarray(["ehr-{org}-*", "ehr-*", "*", "other"]),
    operations: fc.subarray([...OPERATIONS], { minLength: 1 }),
    purposes: fc.subarray([...PURPOSES_OF_USE], { maxLength: 4 }),
  });
  const anyPolicy = fc.array(grant, { maxLength: 4 }).map((grants) =>
    policy({
      roles: { clinician: {}, "ehr-store": {}, "key-admin": {} },
      principals: {},
      grants: grants.map((g, i) => ({ id: `g${i}`, ...g })),
    }),
  );

  it("an empty purpose list never allows", () => {
    fc.assert(
      fc.property(anyPolicy, request, (p: Policy, r) => {
        const emptied = { ...p, grants: p.grants.map((g) => ({ ...g, purposes: [] })) };
        expect(decide(emptied, r as PolicyRequest).decision).not.toBe("allow");
      }),
    );
  });

  it("a principal none of whose roles has a grant is always denied", () => {
    fc.assert(
      fc.property(anyPolicy, request, (p: Policy, r) => {
        const stranger = { ...r, principal: { ...r.principal, roles: ["visitor"] } } as PolicyRequest;
        expect(decide(p, stranger)).toMatchObject({ decision: "deny", rule: "default-deny" });
      }),
    );
  });

  it("an allow always names a grant that allows the operation and purpose", () => {
    fc.assert(
      fc.property(anyPolicy, request, (p: Policy, r) => {
        const d = decide(p, r as PolicyRequest);
        if (d.decision !== "allow") return;
        const id = /^grant:([^+]+)/.exec(d.rule)?.[1];
        const g = p.grants.find((x) => x.id === id)!;
        expect(g.operations).toContain(r.operation);
        expect(g.purposes).toContain(r.purpose);
      }),
    );
  });

  it("adding a role to the principal never turns an allow into a deny (no conflicts declared)", () => {
    fc.assert(
      fc.property(
        anyPolicy,
        request,
        fc.constantFrom("clinician", "ehr-store", "key-admin"),
        (p, r, extra) => {
          const before = decide(p, r as PolicyRequest).decision;
          const more = { ...r, principal: { ...r.principal, roles: [...r.principal.roles, extra] } };
          if (before === "allow") expect(decide(p, more as PolicyRequest).decision).toBe("allow");
        },
      ),
    );
  });
});
