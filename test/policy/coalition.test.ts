/**
 * The smallest-coalition search: exact on hand-made cases, and checked
 * against brute force over every subset of principals on random small
 * policies, where "the subset can act" is decided by decide() itself (some
 * member requests, every other member approves) and, for custody, by
 * counting shares directly. If the class-symmetric search and the abilities
 * it uses ever disagreed with the engine, these tests would say so.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { custodyGoal, useGoal } from "../../src/policy/abilities.js";
import { describeMembers, memberClasses, smallestCoalition } from "../../src/policy/coalition.js";
import { conflictAmong, decide, declaredPrincipal } from "../../src/policy/decide.js";
import type { KeyDeclaration, Policy } from "../../src/policy/document.js";
import { policy } from "./helpers.js";

const ORGS = ["nyu", "msk", "weill"] as const;
const ROLES = ["r1", "r2", "r3"] as const;
const orgDecls = Object.fromEntries(ORGS.map((o) => [o, { name: o.toUpperCase() }]));
const roleDecls = Object.fromEntries(ROLES.map((r) => [r, {}]));
const TARGET: KeyDeclaration = { pattern: "ehr-nyu-*", organisation: "nyu", context: { institution: "nyu" } };

function subsets<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let m = 0; m < 1 << items.length; m++) out.push(items.filter((_, i) => m & (1 << i)));
  return out.sort((a, b) => a.length - b.length);
}

/** Brute force: the size of the smallest set of principals one of whom decide() lets decrypt, approved by the others. */
function bruteUse(p: Policy): number | null {
  const ids = Object.keys(p.principals);
  for (const s of subsets(ids)) {
    for (const r of s) {
      for (const purpose of ["TREAT", "ETREAT"]) {
        const d = decide(p, {
          principal: declaredPrincipal(p, r)!,
          operation: "decrypt",
          key: "ehr-nyu-notes",
          purpose,
          context: { institution: "nyu" },
          now: 1000,
          approvals: s.filter((x) => x !== r).map((x) => ({ principal: declaredPrincipal(p, x)!, at: 1000 })),
        });
        if (d.decision === "allow") return s.length;
      }
    }
  }
  return null;
}

/** Brute force: the smallest set of share holders meeting the custody requirements. */
function bruteCustody(p: Policy): number | null {
  const c = p.custody!;
  const holders = Object.entries(p.principals)
    .filter(
      ([id, q]) => c.holders.principals.includes(id) || q.roles.some((r) => c.holders.roles.includes(r)),
    )
    .filter(([, q]) => !(c.forbidConflictingRoles && conflictAmong(p, q.roles)));
  for (const s of subsets(holders)) {
    const perOrg = new Map<string, number>();
    for (const [, q] of s) perOrg.set(q.organisation, (perOrg.get(q.organisation) ?? 0) + 1);
    const shares = [...perOrg.values()].reduce((a, n) => a + Math.min(n, c.maxPerOrganisation ?? n), 0);
    if (s.length > 0 && shares >= c.threshold && perOrg.size >= c.minOrganisations) return s.length;
  }
  return null;
}

const principals = fc
  .array(
    fc.record({ organisation: fc.constantFrom(...ORGS), roles: fc.subarray([...ROLES], { minLength: 1 }) }),
    {
      minLength: 1,
      maxLength: 7,
    },
  )
  .map((list) => Object.fromEntries(list.map((q, i) => [`p${i}`, q])));

const randomPolicy = fc
  .record({
    principals,
    conflicts: fc.subarray([{ roles: ["r1", "r3"] }, { roles: ["r2", "r3"] }]),
    grants: fc.array(
      fc.record({
        id: fc.constantFrom("g1", "g2", "g3"),
        roles: fc.subarray([...ROLES], { minLength: 1 }),
        keys: fc.constantFrom(["ehr-{org}-*"], ["ehr-*"], ["ehr-msk-*"]),
        operations: fc.constantFrom(["decrypt"], ["destroy"]),
        purposes: fc.constantFrom(["TREAT"], []),
        conditions: fc.constantFrom([], [{ context: "institution", equals: "$caller.organisation" }]),
      }),
      { maxLength: 3 },
    ),
    breakGlass: fc.option(
      fc.record({
        roles: fc.subarray([...ROLES], { minLength: 1 }),
        keys: fc.constant(["ehr-*"]),
        operations: fc.constant(["decrypt"]),
        review: fc.option(fc.constant({ roles: ["r2"], within: "72h" }), { nil: undefined }),
      }),
      { nil: undefined },
    ),
    approvals: fc.array(
      fc.record({
        id: fc.constantFrom("a1", "a2"),
        operations: fc.constant(["decrypt"]),
        keys: fc.constantFrom(["*"], ["ehr-{org}-*"]),
        required: fc.integer({ min: 1, max: 3 }),
        eligible: fc.record({ roles: fc.subarray([...ROLES]), principals: fc.subarray(["p0", "p1"]) }),
        distinctOrganisations: fc.boolean(),
        outsideRequesterOrganisation: fc.boolean(),
        expiresAfter: fc.constant("1h"),
      }),
      { maxLength: 2 },
    ),
    custody: fc.record({
      holders: fc.record({ roles: fc.subarray([...ROLES]), principals: fc.subarray(["p0", "p2"]) }),
      threshold: fc.integer({ min: 1, max: 4 }),
      minOrganisations: fc.integer({ min: 1, max: 3 }),
      maxPerOrganisation: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
      forbidConflictingRoles: fc.boolean(),
    }),
  })
  .map((doc) => policy({ organisations: orgDecls, roles: roleDecls, ...doc }));

function individuals(p: Policy) {
  return new Set([
    ...p.approvals.flatMap((a) => a.eligible.principals),
    ...(p.custody?.holders.principals ?? []),
  ]);
}

describe("smallest coalition", () => {
  it("equals brute force over decide() for using a key, approvals included (property)", () => {
    fc.assert(
      fc.property(randomPolicy, (p) => {
        const classes = memberClasses(p, individuals(p));
        const r = smallestCoalition(classes, useGoal(p, classes, "decrypt", TARGET));
        expect(r.found ? r.coalition.size : null).toBe(bruteUse(p));
      }),
      { numRuns: 400 },
    );
  });

  it("equals brute force for custody quorums (property)", () => {
    fc.assert(
      fc.property(randomPolicy, (p) => {
        const classes = memberClasses(p, individuals(p));
        const r = smallestCoalition(classes, custodyGoal(p, classes));
        expect(r.found ? r.coalition.size : null).toBe(bruteCustody(p));
      }),
      { numRuns: 400 },
    );
  });

  it("names the people, so a reviewer reads who can act together", () => {
    const p = policy({
      roles: { clinician: {}, "key-admin": {} },
      principals: {
        alice: { name: "Alice Chen", organisation: "nyu", roles: ["clinician"] },
        bob: { name: "Bob Park", organisation: "nyu", roles: ["clinician"] },
      },
      grants: [
        { id: "g", roles: ["clinician"], keys: ["ehr-nyu-*"], operations: ["decrypt"], purposes: ["TREAT"] },
      ],
      approvals: [
        {
          id: "a",
          operations: ["decrypt"],
          required: 1,
          eligible: { roles: ["clinician"] },
          expiresAfter: "1h",
        },
      ],
    });
    const classes = memberClasses(p, new Set());
    const r = smallestCoalition(classes, useGoal(p, classes, "decrypt", TARGET));
    expect(r.found).toBe(true);
    if (r.found) {
      expect(describeMembers(p, r.coalition)).toBe(
        "Alice Chen (alice) and Bob Park (bob), both of NYU Langone, together",
      );
    }
  });

  it("says 'at least' instead of guessing when identity rules make a class unbounded", () => {
    const p = policy({
      roles: { custodian: {} },
      identities: [{ id: "sso", issuer: "https://idp", organisation: "nyu", roles: ["custodian"] }],
      custody: { holders: { roles: ["custodian"] }, threshold: 40 },
    });
    const classes = memberClasses(p, new Set());
    expect(smallestCoalition(classes, custodyGoal(p, classes))).toEqual({
      found: false,
      exhaustive: false,
      atLeast: 25,
    });
    const small = { ...p, custody: { ...p.custody!, threshold: 3 } };
    const r = smallestCoalition(classes, custodyGoal(small, classes));
    expect(r.found && r.coalition.members.map((m) => m.name)).toEqual([
      "principal 1 of 3 signed in through identity rule sso",
      "principal 2 of 3 signed in through identity rule sso",
      "principal 3 of 3 signed in through identity rule sso",
    ]);
  });
});
