/**
 * Issue 10, findings 4 and 18, in memory (`app.request()`; no process was
 * involved in either attack). Finding 4: separation of duty was checked per
 * credential — the consortium's SSO rule for NYU clinicians mapped a JWT
 * naming `lee` (a key administrator) to a clinician, so Lee administered
 * keys with his token and decrypted records with a JWT. Now a credential
 * never gives a declared principal a role the policy does not declare for
 * it, a policy in which two credentials can give one name conflicting roles
 * is refused at load and on reload (CUS013), and a running policy that
 * slipped through refuses every credential of such a name. Finding 18:
 * names custos writes itself (`custos`, `anonymous`, `custodian:alice`, …)
 * can no longer be minted, mapped from a JWT, or declared in a policy.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JwtVerifier } from "../../src/api/jwt.js";
import { reloadPolicy } from "../../src/api/policy-reload.js";
import { Auditor } from "../../src/audit/auditor.js";
import { loadPolicyFile, PolicyEngine, PolicyLoadError } from "../../src/policy/engine.js";
import { principalFromClaims } from "../../src/policy/identity.js";
import { lintText } from "../../src/policy/lint.js";
import { parsePolicy } from "../../src/policy/source.js";
import { initialisedNode, type TestNode } from "../helpers/node.js";
import { mintTokens } from "../helpers/policy-calls.js";

const CONSORTIUM = fileURLToPath(new URL("../../policies/examples/consortium.yaml", import.meta.url));
const ISSUER = "https://login.nyulangone.example";
const AUDIENCE = "custos";
type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];

/** The consortium plus a second NYU rule: the same identity provider's key administrators. */
const TWO_RULES = `  - id: nyu-sso-key-admins
    issuer: https://login.nyulangone.example
    match: { groups: key-admins }
    principalClaim: sub
    organisation: nyu
    roles: [key-admin]
`;

describe("principals across credentials", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-principal-"));
  const consortium = readFileSync(CONSORTIUM, "utf8");
  const conflicting = consortium.replace("\n# Record keys", `${TWO_RULES}\n# Record keys`);
  let key: SigningKey;
  let jwt: JwtVerifier;
  let t: TestNode;
  let tokens: Map<string, string>;

  const sign = (sub: string, groups: string[]) =>
    new SignJWT({ groups })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(sub)
      .setExpirationTime("5m")
      .sign(key);

  const request = async (
    node: TestNode,
    method: string,
    path: string,
    bearer: string,
    opts: { body?: unknown; purpose?: string } = {},
  ) => {
    const headers: Record<string, string> = { authorization: `Bearer ${bearer}` };
    if (opts.purpose) headers["x-purpose-of-use"] = opts.purpose;
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    const res = await node.node.app.request(path, {
      method,
      headers,
      ...(opts.body !== undefined && { body: JSON.stringify(opts.body) }),
    });
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown> & { error?: { rule?: string; code: string } },
    };
  };
  const context = { institution: "nyu", patient: "MRN-7" };

  beforeAll(async () => {
    const pair = await generateKeyPair("ES256", { extractable: true });
    key = pair.privateKey;
    const jwks = join(dir, "jwks.json");
    writeFileSync(
      jwks,
      JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256" }] }),
    );
    jwt = JwtVerifier.fromOptions({ jwksFile: jwks, issuer: ISSUER, audience: AUDIENCE });
    t = await initialisedNode({ policy: PolicyEngine.fromFile(CONSORTIUM), jwt });
    tokens = await mintTokens(t.node.store, ["lee", "nyu-ehr-store"]);
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("finding 4: Lee, key administrator, rotates a key with his token but cannot decrypt records with an SSO JWT", async () => {
    const lee = tokens.get("lee")!;
    expect(
      (await request(t, "POST", "/v1/keys", lee, { body: { name: "ehr-nyu-chart" }, purpose: "HSYSADMIN" }))
        .status,
    ).toBe(201);
    expect(
      (await request(t, "POST", "/v1/keys/ehr-nyu-chart/rotate", lee, { purpose: "HSYSADMIN" })).status,
    ).toBe(200);
    const enc = await request(t, "POST", "/v1/keys/ehr-nyu-chart/encrypt", tokens.get("nyu-ehr-store")!, {
      body: { purpose: "TREAT", context, plaintext: "aGVsbG8=" },
    });
    expect(enc.status).toBe(200);

    // The identity provider puts Lee in the clinicians' group: his JWT named "lee".
    const sso = await sign("lee", ["ehr-clinicians"]);
    const dec = await request(t, "POST", "/v1/keys/ehr-nyu-chart/decrypt", sso, {
      body: { purpose: "TREAT", context, ciphertext: enc.body.ciphertext },
    });
    expect(dec.status).toBe(401);
    expect(dec.body.plaintext).toBeUndefined();
    // The mapping itself: a credential never adds a role the policy does not declare for a declared principal.
    const policy = t.node.policy!.policy;
    expect(principalFromClaims(policy, { iss: ISSUER, sub: "lee", groups: ["ehr-clinicians"] })).toBeNull();
    // A clinician the policy does not declare still signs in and decrypts.
    const clinician = await sign("dr-sso-9", ["ehr-clinicians"]);
    const ok = await request(t, "POST", "/v1/keys/ehr-nyu-chart/decrypt", clinician, {
      body: { purpose: "TREAT", context, ciphertext: enc.body.ciphertext },
    });
    expect(ok.status).toBe(200);
  });

  it("finding 4: a policy letting one name gather conflicting roles through two credentials is refused at load and on reload (CUS013)", async () => {
    const file = join(dir, "two-rules.yaml");
    writeFileSync(file, conflicting);
    expect(() => loadPolicyFile(file)).toThrow(PolicyLoadError);
    expect(() => loadPolicyFile(file)).toThrow(
      /CUS013 sod\/roles-across-credentials: identity rules nyu-sso-clinicians .* and nyu-sso-key-admins .* conflicting roles (key-admin and clinician|clinician and key-admin)/,
    );

    const good = join(dir, "good.yaml");
    writeFileSync(good, consortium);
    const engine = PolicyEngine.fromFile(good);
    writeFileSync(good, conflicting);
    const r = await reloadPolicy(engine, new Auditor(t.node.store), { principal: "test" });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toContain("CUS013");
    expect(engine.policy.identities.map((i) => i.id)).toEqual(["nyu-sso-clinicians"]);
  });

  it("finding 4: a running policy that lets a name hold conflicting roles refuses that name's every credential", async () => {
    // Bypassing the load-time check (as a document built in memory could), the request-time check still holds.
    const source = parsePolicy(conflicting, "two-rules.yaml");
    const engine = new PolicyEngine({
      policy: source.policy!,
      file: "two-rules.yaml",
      digest: "0".repeat(64),
    });
    const other = await initialisedNode({ policy: engine, jwt, log: pino({ level: "silent" }) });
    try {
      for (const groups of [["key-admins"], ["ehr-clinicians"]]) {
        const r = await request(other, "GET", "/v1/keys", await sign("sam-nyu", groups), {
          purpose: "HSYSADMIN",
        });
        expect(r.status, groups[0]).toBe(403);
        expect(r.body.error?.rule, groups[0]).toMatch(/^sod:(key-admin\/clinician|clinician\/key-admin)$/);
      }
    } finally {
      await other.close();
    }
  });

  it("finding 18: reserved principal names are refused in minting, JWT mapping and policy principals", async () => {
    // Without a policy, the root token could mint a token named after the node or a custodian.
    const plain = await initialisedNode();
    try {
      for (const name of ["custos", "anonymous", "root", "custodian:alice", "Custos"]) {
        const r = await request(plain, "POST", "/v1/tokens", plain.rootToken, {
          body: { principal: name, roles: ["admin"] },
        });
        expect([name, r.status, r.body.error?.rule]).toEqual([name, 403, "tokens:reserved-name"]);
      }
      const fine = await request(plain, "POST", "/v1/tokens", plain.rootToken, {
        body: { principal: "alice", roles: ["auditor"] },
      });
      expect(fine.status).toBe(201);
    } finally {
      await plain.close();
    }
    // A JWT whose subject is a reserved name maps to nobody.
    const custos = await request(t, "GET", "/v1/keys", await sign("custos", ["ehr-clinicians"]), {
      purpose: "TREAT",
    });
    expect(custos.status).toBe(401);
    // A policy declaring one is refused.
    const findings = lintText(
      consortium.replace("principals:\n", "principals:\n  custos: { organisation: nyu, roles: [auditor] }\n"),
      "reserved.yaml",
    );
    expect(findings).toContainEqual(
      expect.objectContaining({
        ruleId: "CUS002",
        level: "error",
        message: expect.stringContaining("'custos' is reserved"),
      }),
    );
  });
});
