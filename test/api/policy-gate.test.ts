/**
 * The policy engine behind the gate, in memory: documents refused at load
 * (schema errors, conflicting roles) with every finding named; identity
 * mapping of tokens, JWT claims and certificate claims (rules for x509, the
 * CN fallback only without them); a reviewer who is also the break-glass
 * user cannot close their own review; the reload route without a policy.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyEngine, PolicyLoadError } from "../../src/policy/engine.js";
import { initialisedNode, type TestNode } from "../helpers/node.js";
import { caller, mintTokens } from "../helpers/policy-calls.js";

const dir = mkdtempSync(join(tmpdir(), "custos-policy-gate-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function policyFile(yaml: string): string {
  const file = join(dir, `${randomBytes(4).toString("hex")}.yaml`);
  writeFileSync(file, yaml);
  return file;
}

/** Clinicians review each other's break-glass: the only way a user is also an eligible reviewer. */
const PEER_REVIEW = `version: custos-policy/v1
organisations: { nyu: { name: NYU Langone } }
roles: { clinician: {}, key-admin: {} }
conflicts: [{ roles: [clinician, key-admin] }]
principals:
  ann: { organisation: nyu, roles: [clinician] }
  bea: { organisation: nyu, roles: [clinician] }
  kai: { organisation: nyu, roles: [key-admin] }
identities:
  - { id: nyu-mtls, issuer: x509, match: { o: NYU Langone }, principalClaim: cn, organisation: nyu, roles: [clinician] }
grants:
  - { id: admin, roles: [key-admin], keys: ["ehr-*"], operations: [create], purposes: [HSYSADMIN] }
  - { id: audit, roles: [clinician], operations: [read-audit], purposes: [HCOMPL] }
breakGlass:
  roles: [clinician]
  keys: ["ehr-*"]
  operations: [datakey]
  review: { roles: [clinician], within: 24h }
`;

describe("policy engine: loading and identity", () => {
  it("refuses a document with schema errors or conflicting roles, naming each finding", () => {
    const schema = policyFile("version: custos-policy/v1\norganisations: {}\nroles: {}\ngrnts: []\n");
    expect(() => PolicyEngine.fromFile(schema)).toThrow(/CUS001 schema: unknown field 'grnts'/);
    const sod = policyFile(
      PEER_REVIEW.replace(
        "kai: { organisation: nyu, roles: [key-admin] }",
        "kai: { organisation: nyu, roles: [key-admin, clinician] }",
      ),
    );
    expect(() => PolicyEngine.fromFile(sod)).toThrow(PolicyLoadError);
    expect(() => PolicyEngine.fromFile(sod)).toThrow(/CUS003 sod\/conflicting-roles/);
    expect(() => PolicyEngine.fromFile(join(dir, "missing.yaml"))).toThrow(/cannot read policy/);
    expect(() => PolicyEngine.fromFile(policyFile("a: [\n"))).toThrow(/refused: not YAML/);
  });

  it("keeps the running policy when a reload is refused", () => {
    const file = policyFile(PEER_REVIEW);
    const engine = PolicyEngine.fromFile(file);
    const digest = engine.digest;
    writeFileSync(file, "version: custos-policy/v2\n");
    expect(() => engine.reload()).toThrow(PolicyLoadError);
    expect(engine.digest).toBe(digest);
    expect(engine.resolve({ id: "ann", roles: [] })).toMatchObject({
      organisation: "nyu",
      roles: ["clinician"],
    });
  });

  it("maps tokens by name, certificates by x509 rules, and by CN only where no x509 rule exists", () => {
    const engine = PolicyEngine.fromFile(policyFile(PEER_REVIEW));
    expect(engine.resolve({ id: "mallory", roles: ["root"] })).toBeNull();
    expect(engine.resolve({ id: "kai", roles: ["service"] })).toMatchObject({
      roles: ["key-admin"],
      via: "token",
    });
    const cert = { iss: "x509", cn: "dr-new", sub: "dr-new", o: "NYU Langone" };
    expect(engine.fromClaims(cert, "mtls")).toMatchObject({
      id: "dr-new",
      roles: ["clinician"],
      via: "mtls:nyu-mtls",
    });
    // Another organisation's certificate matches no rule, and the CN is no way around the rules.
    expect(engine.fromClaims({ ...cert, o: "Elsewhere", cn: "kai" }, "mtls")).toBeNull();
    const noRules = PolicyEngine.fromFile(policyFile(PEER_REVIEW.replace(/identities:\n.*\n/, "")));
    expect(noRules.fromClaims({ ...cert, cn: "kai" }, "mtls")).toMatchObject({
      id: "kai",
      roles: ["key-admin"],
      via: "mtls:cn",
    });
    expect(noRules.fromClaims({ ...cert, cn: "nobody" }, "mtls")).toBeNull();
    // A JWT never falls back to the CN rule.
    expect(noRules.fromClaims({ iss: "x509", cn: "kai" }, "jwt")).toBeNull();
  });
});

describe("break-glass reviews through the gate", () => {
  let t: TestNode;
  let tokens = new Map<string, string>();
  const call = (...args: Parameters<ReturnType<typeof caller>>) => caller(() => t.node.app, tokens)(...args);

  beforeAll(async () => {
    t = await initialisedNode({ policy: PolicyEngine.fromFile(policyFile(PEER_REVIEW)) });
    tokens = await mintTokens(t.node.store, ["ann", "bea", "kai"]);
    expect((await call("kai", "POST", "/v1/keys", { name: "ehr-nyu-notes" }, "HSYSADMIN")).status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("opens a review for a break-glass use; its user cannot close it, a peer can", async () => {
    const use = await call("ann", "POST", "/v1/keys/ehr-nyu-notes/datakey", {
      purpose: "ETREAT",
      context: {},
    });
    expect(use.status, JSON.stringify(use.body)).toBe(200);
    const notGlass = await call("ann", "POST", "/v1/keys/ehr-nyu-notes/datakey", {
      purpose: "TREAT",
      context: {},
    });
    expect(notGlass.body.error?.rule).toBe("default-deny");
    const list = await call("bea", "GET", "/v1/reviews?open=true", undefined, "HCOMPL");
    const reviews = list.body.reviews as {
      id: string;
      principal: string;
      dueAt: string;
      createdAt: string;
    }[];
    expect(reviews).toHaveLength(1);
    const review = reviews[0]!;
    expect(Date.parse(review.dueAt) - Date.parse(review.createdAt)).toBe(24 * 3600 * 1000);

    const self = await call("ann", "POST", `/v1/reviews/${review.id}/close`, { note: "fine" }, "HCOMPL");
    expect(self.status).toBe(403);
    expect(self.body.error).toMatchObject({ code: "self_review", rule: "review:self" });
    const admin = await call("kai", "POST", `/v1/reviews/${review.id}/close`, { note: "fine" }, "HCOMPL");
    expect(admin.body.error?.rule).toBe("review:not-eligible");
    const peer = await call(
      "bea",
      "POST",
      `/v1/reviews/${review.id}/close`,
      { note: "checked the chart" },
      "HCOMPL",
    );
    expect(peer.status).toBe(200);
    expect((await call("bea", "GET", "/v1/reviews?open=true", undefined, "HCOMPL")).body.reviews).toEqual([]);
    const missing = await call(
      "bea",
      "POST",
      "/v1/reviews/00000000-0000-4000-8000-000000000000/close",
      { note: "x" },
      "HCOMPL",
    );
    expect(missing.status).toBe(404);
  });
});

describe("without a policy", () => {
  it("keeps the role table, and has no policy to reload", async () => {
    const t = await initialisedNode();
    try {
      const res = await t.node.app.request("/v1/sys/policy/reload", {
        method: "POST",
        headers: { authorization: `Bearer ${t.rootToken}` },
      });
      expect(res.status).toBe(409);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("no_policy");
    } finally {
      await t.close();
    }
  });
});
