/**
 * Minting under a policy (src/policy/minting.ts) and its place in the
 * linter: each refusal rule of `mintCheck` in isolation, the re-check at
 * use after a reload (`stillMintable`), CUS012 for a conflicting target,
 * and the smallest coalition (CUS100) counting a minter as the principals
 * it may mint for.
 */
import { describe, expect, it } from "vitest";
import { lintPolicy } from "../../src/policy/lint.js";
import { mintCheck, stillMintable } from "../../src/policy/minting.js";
import { policy } from "./helpers.js";

const base = {
  roles: { "token-admin": {}, "ehr-store": {}, "key-admin": {}, auditor: {} },
  conflicts: [{ roles: ["key-admin", "ehr-store"] }],
  principals: {
    tess: { organisation: "nyu", roles: ["token-admin"] },
    "nyu-ehr-store": { kind: "service", organisation: "nyu", roles: ["ehr-store"] },
    "nyu-audit-bot": { kind: "service", organisation: "nyu", roles: ["auditor"] },
    "msk-ehr-store": { kind: "service", organisation: "msk", roles: ["ehr-store"] },
    lee: { organisation: "nyu", roles: ["key-admin"] },
  },
  keys: [{ pattern: "ehr-nyu-*", organisation: "nyu", context: { institution: "nyu" } }],
  grants: [
    {
      id: "desk",
      roles: ["token-admin"],
      operations: ["token-create"],
      purposes: ["HSYSADMIN"],
      tokens: { mint: ["{org}-*"], roles: ["ehr-store"] },
    },
    {
      id: "store",
      roles: ["ehr-store"],
      keys: ["ehr-{org}-*"],
      operations: ["decrypt"],
      purposes: ["TREAT"],
    },
  ],
  approvals: [
    {
      id: "destroy",
      operations: ["destroy"],
      required: 1,
      eligible: { roles: ["key-admin"] },
      expiresAfter: "24h",
    },
  ],
};
const tess = { id: "tess", organisation: "nyu", roles: ["token-admin"] };

describe("minting", () => {
  it("allows exactly what the tokens rule covers within the minter's organisation, refusing each other case by its rule", () => {
    const p = policy(base);
    const rule = (name: string, purpose = "HSYSADMIN") => {
      const r = mintCheck(p, tess, purpose, name);
      return r.ok ? `ok:${r.grant}` : r.rule;
    };
    expect(rule("nyu-ehr-store")).toBe("ok:desk");
    expect(rule("nyu-ehr-store", "TREAT")).toBe("tokens:not-mintable"); // the grant is for HSYSADMIN
    expect(rule("nyu-audit-bot")).toBe("tokens:not-mintable"); // auditor is not among the rule's roles
    expect(rule("msk-ehr-store")).toBe("tokens:other-organisation");
    expect(rule("lee")).toBe("tokens:privileged"); // an approver
    expect(rule("nobody")).toBe("tokens:undeclared");
    expect(rule("anonymous")).toBe("tokens:reserved-name");
    const withConflict = policy({ ...base, conflicts: [{ roles: ["token-admin", "ehr-store"] }] });
    expect(mintCheck(withConflict, tess, "HSYSADMIN", "nyu-ehr-store")).toMatchObject({
      ok: false,
      rule: "tokens:sod:token-admin/ehr-store",
    });
  });

  it("re-checks a minted token under the running policy: a reload that makes its principal an approver ends it", () => {
    expect(stillMintable(policy(base), "desk", "nyu-ehr-store").ok).toBe(true);
    const approver = policy({
      ...base,
      approvals: [
        { ...base.approvals[0], eligible: { roles: ["key-admin"], principals: ["nyu-ehr-store"] } },
      ],
    });
    expect(stillMintable(approver, "desk", "nyu-ehr-store")).toMatchObject({
      ok: false,
      rule: "tokens:privileged",
    });
    const narrowed = policy({
      ...base,
      grants: [
        { ...base.grants[0], tokens: { mint: ["{org}-lab-*"], roles: ["ehr-store"] } },
        base.grants[1],
      ],
    });
    expect(stillMintable(narrowed, "desk", "nyu-ehr-store")).toMatchObject({
      ok: false,
      rule: "tokens:not-mintable",
    });
  });

  it("CUS012 when the rule covers a principal whose roles conflict with the minter's", () => {
    const p = policy({
      ...base,
      principals: { ...base.principals, tess: { organisation: "nyu", roles: ["token-admin", "key-admin"] } },
      approvals: [],
    });
    const f = lintPolicy(p).filter((x) => x.ruleId === "CUS012");
    expect(f.map((x) => x.message)).toEqual([
      "grant desk lets tess mint credentials for nyu-ehr-store, whose roles together with theirs conflict (key-admin and ehr-store)",
    ]);
  });

  it("refuses a minter who approves: an approver minting a requester would approve their own request", () => {
    const p = policy({
      ...base,
      conflicts: [],
      principals: { ...base.principals, tess: { organisation: "nyu", roles: ["token-admin", "key-admin"] } },
    });
    expect(
      mintCheck(p, { ...tess, roles: ["token-admin", "key-admin"] }, "HSYSADMIN", "nyu-ehr-store"),
    ).toMatchObject({
      ok: false,
      rule: "tokens:minter-privileged",
    });
  });

  it("CUS100 counts minting: the token desk alone can decrypt, as the service it mints a token for", () => {
    const notes = lintPolicy(policy(base))
      .filter((x) => x.ruleId === "CUS100")
      .map((x) => x.message);
    expect(notes).toContain(
      "tess of NYU Langone alone can decrypt ehr-nyu-* (grant store, as nyu-ehr-store through a minted token, 1 principal(s))",
    );
  });
});
