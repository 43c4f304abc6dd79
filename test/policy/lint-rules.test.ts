/**
 * Branches of the lint rules that the one-per-rule fixtures do not reach:
 * conflicting roles through an identity rule, administer-and-use through two
 * roles of one principal, break-glass reviewed only by its user, custody
 * thresholds no set of holders can meet, duplicate ids, and the counting
 * rules staying quiet while names are unknown.
 */
import { describe, expect, it } from "vitest";
import { lintPolicy } from "../../src/policy/lint.js";
import { policy } from "./helpers.js";

const ids = (doc: Record<string, unknown>) => lintPolicy(policy(doc)).map((f) => f.ruleId);
const only = (doc: Record<string, unknown>) => lintPolicy(policy(doc)).filter((f) => f.level !== "note");

describe("lint rules, beyond the fixtures", () => {
  it("CUS003 for an identity rule that maps to conflicting roles", () => {
    const f = only({
      roles: { custodian: {}, "dc-operator": {} },
      conflicts: [{ roles: ["custodian", "dc-operator"] }],
      identities: [
        { id: "sso", issuer: "https://idp", organisation: "nyu", roles: ["custodian", "dc-operator"] },
      ],
    });
    expect(f.map((x) => [x.ruleId, x.path])).toEqual([["CUS003", ["identities", 0, "roles"]]]);
  });

  it("CUS004 for one principal whose two roles together administer and use a key", () => {
    const f = only({
      roles: { "key-admin": {}, reader: {} },
      principals: { kim: { organisation: "nyu", roles: ["key-admin", "reader"] } },
      grants: [
        {
          id: "admin",
          roles: ["key-admin"],
          keys: ["ehr-*"],
          operations: ["rotate"],
          purposes: ["HSYSADMIN"],
        },
        { id: "read", roles: ["reader"], keys: ["ehr-nyu-*"], operations: ["decrypt"], purposes: ["TREAT"] },
      ],
    });
    expect(f.map((x) => x.ruleId)).toEqual(["CUS004"]);
    expect(f[0]!.message).toContain("principal kim");
  });

  it("CUS004 counts update (enable, minimum version) as administering; read and the node operations do not", () => {
    const doc = (operations: string[]) => ({
      roles: { ops: {} },
      principals: { kim: { organisation: "nyu", roles: ["ops"] } },
      grants: [
        { id: "admin", roles: ["ops"], keys: ["ehr-*"], operations, purposes: ["HSYSADMIN"] },
        { id: "use", roles: ["ops"], keys: ["ehr-nyu-*"], operations: ["decrypt"], purposes: ["TREAT"] },
      ],
    });
    expect(ids(doc(["update"]))).toEqual(["CUS004"]);
    expect(ids(doc(["read"]))).toEqual([]);
    expect(
      ids({
        ...doc(["read"]),
        grants: [
          {
            id: "node",
            roles: ["ops"],
            operations: ["list", "tpm-seal-read", "token-create"],
            purposes: ["HSYSADMIN"],
            tokens: { mint: ["svc-*"], roles: ["ops"] },
          },
        ],
      }),
    ).toEqual([]);
  });

  it("no CUS004 when administered and used keys cannot coincide", () => {
    expect(
      ids({
        roles: { "key-admin": {} },
        principals: { kim: { organisation: "nyu", roles: ["key-admin"] } },
        grants: [
          {
            id: "a",
            roles: ["key-admin"],
            keys: ["ehr-*"],
            operations: ["destroy"],
            purposes: ["HSYSADMIN"],
          },
          { id: "u", roles: ["key-admin"], keys: ["lab-*"], operations: ["decrypt"], purposes: ["TREAT"] },
        ],
      }),
    ).toEqual([]);
  });

  it("CUS006 when the only reviewer is the break-glass user", () => {
    const f = only({
      roles: { clinician: {} },
      principals: { alice: { organisation: "nyu", roles: ["clinician"] } },
      breakGlass: {
        roles: ["clinician"],
        keys: ["ehr-*"],
        operations: ["decrypt"],
        review: { roles: ["clinician"], within: "72h" },
      },
    });
    expect(f.map((x) => x.ruleId)).toEqual(["CUS006"]);
    expect(f[0]!.message).toContain("no one other than alice");
  });

  it("CUS009 for a custody quorum needing more organisations than hold shares", () => {
    const f = only({
      roles: { custodian: {} },
      principals: {
        alice: { organisation: "nyu", roles: ["custodian"] },
        bob: { organisation: "nyu", roles: ["custodian"] },
      },
      custody: { holders: { roles: ["custodian"] }, threshold: 2, minOrganisations: 2 },
    });
    expect(f.map((x) => [x.ruleId, x.path])).toEqual([["CUS009", ["custody", "threshold"]]]);
  });

  it("CUS002 for duplicate rule ids, and no counting rules while names are unknown", () => {
    const f = ids({
      roles: { custodian: {} },
      principals: { alice: { organisation: "nyu", roles: ["custodian"] } },
      grants: [
        { id: "g", roles: ["custodian"], operations: ["ceremony-unseal"], purposes: ["HSYSADMIN"] },
        { id: "g", roles: ["custodian"], operations: ["ceremony-seal"], purposes: ["HSYSADMIN"] },
      ],
      custody: { holders: { roles: ["custodain"] }, threshold: 5 },
    });
    expect(f).toEqual(["CUS002", "CUS002"]);
  });

  it("no CUS005 when the grant is tied to the caller's institution or marked acrossOrganisations", () => {
    const base = {
      roles: { clinician: {} },
      principals: { alice: { organisation: "nyu", roles: ["clinician"] } },
      keys: [{ pattern: "ehr-msk-*", organisation: "msk", context: { institution: "msk" } }],
    };
    const grant = {
      id: "g",
      roles: ["clinician"],
      keys: ["ehr-*"],
      operations: ["decrypt"],
      purposes: ["TREAT"],
    };
    const tied = { ...grant, conditions: [{ context: "institution", equals: "$caller.organisation" }] };
    expect(only({ ...base, grants: [tied] })).toEqual([]);
    expect(only({ ...base, grants: [{ ...grant, acrossOrganisations: true }] })).toEqual([]);
    expect(only({ ...base, grants: [grant] }).map((x) => x.ruleId)).toEqual(["CUS005"]);
  });
});
