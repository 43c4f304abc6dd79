/**
 * Identity rules: claims from a verified token mapped to a principal, first
 * matching rule wins, and every way of not matching yields no principal.
 */
import { describe, expect, it } from "vitest";
import { principalFromClaims } from "../../src/policy/identity.js";
import { policy } from "./helpers.js";

const p = policy({
  roles: { clinician: {}, auditor: {} },
  principals: { alice: { organisation: "nyu", roles: ["clinician"] } },
  identities: [
    {
      id: "nyu-clinicians",
      issuer: "https://login.nyu.example",
      match: { groups: "ehr-clinicians" },
      organisation: "nyu",
      roles: ["clinician"],
    },
    {
      id: "msk-auditors",
      issuer: "https://sso.msk.example",
      principalClaim: "email_local",
      organisation: "msk",
      roles: ["auditor"],
    },
  ],
});

describe("principalFromClaims", () => {
  it("maps a matching token to principal, organisation and roles, naming the rule", () => {
    expect(
      principalFromClaims(p, {
        iss: "https://login.nyu.example",
        sub: "dr-patel",
        groups: ["staff", "ehr-clinicians"],
      }),
    ).toEqual({ id: "dr-patel", organisation: "nyu", roles: ["clinician"], rule: "nyu-clinicians" });
    expect(principalFromClaims(p, { iss: "https://sso.msk.example", email_local: "yusuf" })).toMatchObject({
      id: "yusuf",
      rule: "msk-auditors",
    });
  });

  it("maps nothing for another issuer, a missing group, or a principal claim that is not an id", () => {
    expect(
      principalFromClaims(p, { iss: "https://evil.example", sub: "x", groups: ["ehr-clinicians"] }),
    ).toBeNull();
    expect(
      principalFromClaims(p, { iss: "https://login.nyu.example", sub: "x", groups: ["staff"] }),
    ).toBeNull();
    expect(
      principalFromClaims(p, {
        iss: "https://login.nyu.example",
        sub: "Not An Id",
        groups: "ehr-clinicians",
      }),
    ).toBeNull();
    expect(principalFromClaims(p, { iss: "https://login.nyu.example", groups: "ehr-clinicians" })).toBeNull();
  });

  it("never maps a token onto a declared principal of another organisation", () => {
    expect(principalFromClaims(p, { iss: "https://sso.msk.example", email_local: "alice" })).toBeNull();
  });
});
