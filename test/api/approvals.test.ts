/**
 * Four eyes through the HTTP API, in memory: a key destruction and a policy
 * change governed by the policy's approval rules. Self-approval is refused
 * under the requester's token, under a JWT and under a client certificate
 * that map to the same policy principal; two approvers of one organisation are refused where distinct
 * organisations are required; an expired approval, other parameters than
 * those approved (another key, another policy document) and a second
 * execution are refused — of two racing executions exactly one wins; a
 * denial by an eligible principal ends the request; every step is audited.
 */
import { createHash, randomBytes } from "node:crypto";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JwtVerifier } from "../../src/api/jwt.js";
import { documentDigest } from "../../src/approvals/binding.js";
import { ApprovalService } from "../../src/approvals/service.js";
import { Auditor } from "../../src/audit/auditor.js";
import { hashToken } from "../../src/crypto/token.js";
import type { Principal } from "../../src/policy/authorizer.js";
import { PolicyEngine } from "../../src/policy/engine.js";
import { initialisedNode, type TestNode } from "../helpers/node.js";

const ISSUER = "https://login.weill.example";
const POLICY = `version: custos-policy/v1
organisations: { weill: { name: Weill }, nyu: { name: NYU }, msk: { name: MSK } }
roles: { key-admin: {}, clinician: {} }
conflicts: [{ roles: [key-admin, clinician] }]
principals:
  kim: { organisation: weill, roles: [key-admin] }
  lee: { organisation: nyu, roles: [key-admin] }
  lou: { organisation: nyu, roles: [key-admin] }
  jo: { organisation: msk, roles: [key-admin] }
  dr-wong: { organisation: weill, roles: [clinician] }
identities:
  - { id: weill-sso-admins, issuer: "${ISSUER}", match: { groups: key-admins }, principalClaim: sub, organisation: weill, roles: [key-admin] }
grants:
  - { id: admins, roles: [key-admin], keys: ["ehr-{org}-*", "tmp-*"], operations: [create, read, rotate, update, disable, destroy], purposes: [HSYSADMIN] }
  - { id: policy, roles: [key-admin], operations: [policy-change], purposes: [HSYSADMIN] }
approvals:
  - { id: destroy-two-other-hospitals, operations: [destroy], keys: ["ehr-*"], required: 2, eligible: { roles: [key-admin] }, distinctOrganisations: true, outsideRequesterOrganisation: true, expiresAfter: 24h }
  - { id: quick-destroy, operations: [destroy], keys: ["tmp-*"], required: 1, eligible: { roles: [key-admin] }, expiresAfter: 1s }
  - { id: policy-changes, operations: [policy-change], required: 2, eligible: { roles: [key-admin] }, distinctOrganisations: true, expiresAfter: 1h }
`;

interface Reply {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; rule?: string; message: string } };
}

describe("approvals API (four eyes)", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-approvals-"));
  const policyFile = join(dir, "policy.yaml");
  let t: TestNode;
  const creds = new Map<string, string>();

  const call = async (
    who: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Reply> => {
    const h: Record<string, string> = {
      authorization: `Bearer ${creds.get(who)}`,
      "x-purpose-of-use": "HSYSADMIN",
      ...headers,
    };
    if (body !== undefined) h["content-type"] = "application/json";
    const res = await t.node.app.request(path, {
      method,
      headers: h,
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Reply["body"] };
  };
  const request = async (who: string, body: Record<string, unknown>) => {
    const r = await call(who, "POST", "/v1/approvals", body);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body.id as string;
  };
  /** `{id, digest}` as a voter or the requester sends it, having read the approval. */
  const seen = async (id: string) => ({
    id,
    digest: (await call("kim", "GET", `/v1/approvals/${id}`)).body.paramsHash as string,
  });
  const approve = async (who: string, id: string) =>
    call(who, "POST", `/v1/approvals/${id}/approve`, await seen(id));
  const execute = async (who: string, id: string) =>
    call(who, "POST", `/v1/approvals/${id}/execute`, await seen(id));

  beforeAll(async () => {
    writeFileSync(policyFile, POLICY);
    const pair = await generateKeyPair("ES256");
    const jwks = join(dir, "jwks.json");
    writeFileSync(
      jwks,
      JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256" }] }),
    );
    t = await initialisedNode({
      policy: PolicyEngine.fromFile(policyFile),
      jwt: JwtVerifier.fromOptions({ jwksFile: jwks, issuer: ISSUER, audience: "custos" }),
    });
    for (const who of ["kim", "lee", "lou", "jo", "dr-wong"]) {
      const token = `cst_${randomBytes(32).toString("base64url")}`;
      creds.set(who, token);
      const now = new Date().toISOString();
      await t.node.store.putToken(
        {
          hash: hashToken(token),
          principal: who,
          roles: [],
          createdBy: "test",
          createdAt: now,
          expiresAt: null,
        },
        { time: now, principal: "test", operation: "tokens.create", decision: "allow" },
      );
    }
    // Kim's second identity: the hospital's identity provider says "kim" too.
    creds.set(
      "kim-jwt",
      await new SignJWT({ groups: ["key-admins"] })
        .setProtectedHeader({ alg: "ES256", kid: "k1" })
        .setIssuer(ISSUER)
        .setAudience("custos")
        .setSubject("kim")
        .setIssuedAt()
        .setExpirationTime("10m")
        .sign(pair.privateKey),
    );
    for (const name of ["ehr-weill-notes", "ehr-weill-images", "ehr-weill-labs", "tmp-scratch"]) {
      expect((await call("kim", "POST", "/v1/keys", { name })).status).toBe(201);
    }
  });
  afterAll(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers approval_required on the route, naming the request to make", async () => {
    const r = await call("kim", "DELETE", "/v1/keys/ehr-weill-notes");
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({
      code: "approval_required",
      rule: "approval:destroy-two-other-hospitals",
    });
    expect(r.body.error?.message).toMatch(/POST \/v1\/approvals .*X-Approval-Id/);
    expect(JSON.parse((r.body.error as unknown as { approvalRequest: string }).approvalRequest)).toEqual({
      operation: "destroy",
      key: "ehr-weill-notes",
      purpose: "HSYSADMIN",
    });
  });

  it("takes requests only for operations that need approvals and that the requester is granted", async () => {
    const rotate = await call("kim", "POST", "/v1/approvals", {
      operation: "rotate",
      key: "ehr-weill-notes",
    });
    expect(rotate).toMatchObject({ status: 409, body: { error: { code: "approval_not_needed" } } });
    const clinician = await call("dr-wong", "POST", "/v1/approvals", {
      operation: "destroy",
      key: "ehr-weill-notes",
    });
    expect(clinician).toMatchObject({
      status: 403,
      body: { error: { code: "forbidden", rule: "default-deny" } },
    });
    const bad = await call("kim", "POST", "/v1/approvals", {
      operation: "destroy",
      key: "Bad Key",
      extra: 1,
    });
    expect(bad.status).toBe(400);
    const missing = await call("kim", "POST", "/v1/approvals", {
      operation: "destroy",
      key: "ehr-weill-nothing",
    });
    expect(missing).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
    const keyless = await call("kim", "POST", "/v1/approvals", { operation: "destroy" });
    expect(keyless).toMatchObject({ status: 400, body: { error: { code: "invalid_request" } } });
    const keyed = await call("kim", "POST", "/v1/approvals", {
      operation: "policy-change",
      key: "ehr-weill-notes",
    });
    expect(keyed).toMatchObject({ status: 400, body: { error: { code: "invalid_request" } } });
    const unbindable = await call("kim", "POST", "/v1/approvals", {
      operation: "destroy",
      key: "ehr-weill-notes",
      body: { limit: 1.5 },
    });
    expect(unbindable).toMatchObject({ status: 400, body: { error: { code: "invalid_parameters" } } });
  });

  it("refuses self-approval, under the requester's token and under a JWT of the same principal", async () => {
    const id = await request("kim", {
      operation: "destroy",
      key: "ehr-weill-notes",
      reason: "retired system",
    });
    const self = await approve("kim", id);
    expect(self).toMatchObject({
      status: 403,
      body: { error: { code: "self_approval", rule: "approval:self" } },
    });
    const second = await approve("kim-jwt", id);
    expect(second).toMatchObject({ status: 403, body: { error: { code: "self_approval" } } });
    expect(second.body.error?.message).toMatch(/jwt:weill-sso-admins/);
    const denySelf = await call("kim-jwt", "POST", `/v1/approvals/${id}/deny`, {
      ...(await seen(id)),
      note: "never mind",
    });
    expect(denySelf).toMatchObject({ status: 403, body: { error: { code: "self_approval" } } });
    // A client certificate with CN=kim is kim too (the policy has no x509 rule, so the CN names the principal).
    const viaCert = t.node.policy?.fromClaims({ iss: "x509", cn: "kim", sub: "kim" }, "mtls");
    expect(viaCert).toMatchObject({ id: "kim", via: "mtls:cn" });
    const service = new ApprovalService(
      t.node.store,
      new Auditor(t.node.store),
      t.node.policy as PolicyEngine,
    );
    const { digest } = await seen(id);
    await expect(
      service.vote(viaCert as Principal, id, true, undefined, "req-cert", digest),
    ).rejects.toMatchObject({
      status: 403,
      code: "self_approval",
    });
    const shown = await call("lee", "GET", `/v1/approvals/${id}`);
    expect(shown.body).toMatchObject({ status: "pending", counted: 0, required: 2, approvals: [] });
  });

  it("refuses a second approver of one organisation where distinct organisations are required", async () => {
    const id = await request("kim", { operation: "destroy", key: "ehr-weill-images" });
    expect((await approve("lee", id)).body).toMatchObject({ status: "pending", counted: 1 });
    expect(await approve("lee", id)).toMatchObject({
      status: 409,
      body: { error: { code: "already_approved" } },
    });
    const lou = await approve("lou", id);
    expect(lou).toMatchObject({
      status: 403,
      body: { error: { code: "organisation_already_approved", rule: "approval:distinct-organisations" } },
    });
    const early = await execute("kim", id);
    expect(early).toMatchObject({ status: 403, body: { error: { code: "approval_incomplete" } } });
    expect((await approve("jo", id)).body).toMatchObject({ status: "approved", counted: 2 });
  });

  it("runs only with the parameters approved, only by the requester, and once (two racing executions: one wins)", async () => {
    const [approved] = (await call("kim", "GET", "/v1/approvals?status=approved")).body.approvals as {
      id: string;
    }[];
    const id = approved?.id as string;
    const other = await call("kim", "DELETE", "/v1/keys/ehr-weill-labs", undefined, { "x-approval-id": id });
    expect(other).toMatchObject({
      status: 403,
      body: { error: { code: "approval_mismatch", rule: "approval:parameters" } },
    });
    expect(await execute("lee", id)).toMatchObject({
      status: 403,
      body: { error: { code: "not_requester" } },
    });
    const race = await Promise.all([
      call("kim", "DELETE", "/v1/keys/ehr-weill-images", undefined, { "x-approval-id": id }),
      execute("kim", id),
    ]);
    expect(race.map((r) => r.status).sort()).toEqual([race.some((r) => r.status === 200) ? 200 : 202, 409]);
    expect((await call("kim", "GET", "/v1/keys/ehr-weill-images")).body).toMatchObject({
      state: "pending-destruction",
    });
    expect(await execute("kim", id)).toMatchObject({ status: 409, body: { error: { code: "not_pending" } } });
    expect((await call("jo", "GET", `/v1/approvals/${id}`)).body).toMatchObject({
      status: "executed",
      executedBy: "kim",
    });
  });

  it("refuses an execution that would fail anyway before spending the approval", async () => {
    const id = await request("kim", { operation: "destroy", key: "ehr-weill-images" });
    await approve("lee", id);
    await approve("jo", id);
    const late = await execute("kim", id);
    expect(late).toMatchObject({ status: 409, body: { error: { code: "key_not_usable" } } });
    expect((await call("kim", "GET", `/v1/approvals/${id}`)).body).toMatchObject({ status: "approved" });
  });

  it("ends a request denied by an eligible principal", async () => {
    const id = await request("kim", { operation: "destroy", key: "ehr-weill-labs" });
    const denied = await call("jo", "POST", `/v1/approvals/${id}/deny`, {
      ...(await seen(id)),
      note: "still in use by oncology",
    });
    expect(denied.body).toMatchObject({ status: "denied", deniedBy: "jo", note: "still in use by oncology" });
    expect(await approve("lee", id)).toMatchObject({ status: 409, body: { error: { code: "not_pending" } } });
    expect(await execute("kim", id)).toMatchObject({ status: 409, body: { error: { code: "not_pending" } } });
    const byStatus = await call("lee", "GET", "/v1/approvals?status=denied");
    expect((byStatus.body.approvals as { id: string }[]).map((a) => a.id)).toEqual([id]);
  });

  it("refuses an expired approval", async () => {
    const id = await request("kim", { operation: "destroy", key: "tmp-scratch" });
    expect((await approve("lee", id)).body).toMatchObject({ status: "approved" });
    await new Promise((r) => setTimeout(r, 1100));
    expect((await call("kim", "GET", `/v1/approvals/${id}`)).body).toMatchObject({ status: "expired" });
    expect(await execute("kim", id)).toMatchObject({
      status: 409,
      body: { error: { code: "approval_expired" } },
    });
    expect(await approve("jo", id)).toMatchObject({
      status: 409,
      body: { error: { code: "approval_expired" } },
    });
    expect((await call("kim", "GET", "/v1/keys/tmp-scratch")).body).toMatchObject({ state: "enabled" });
  });

  it("changes the policy only to the document approved", async () => {
    const refused = await call("kim", "POST", "/v1/sys/policy/reload");
    expect(refused).toMatchObject({ status: 403, body: { error: { code: "approval_required" } } });
    appendFileSync(policyFile, "# reviewed 2026-11\n");
    const id = await request("kim", { operation: "policy-change", reason: "annual review" });
    const digest = (await call("kim", "GET", `/v1/approvals/${id}`)).body.parameters as { digest: string };
    expect(digest.digest).toMatch(/^[0-9a-f]{64}$/);
    await approve("lee", id);
    await approve("jo", id);
    const approvedText = readFileSync(policyFile, "utf8");
    writeFileSync(policyFile, `${approvedText}# slipped in after approval\n`);
    const mismatch = await execute("kim", id);
    expect(mismatch).toMatchObject({ status: 403, body: { error: { code: "approval_mismatch" } } });
    writeFileSync(policyFile, approvedText);
    const done = await call("kim", "POST", "/v1/sys/policy/reload", undefined, { "x-approval-id": id });
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body.digest).toBe(digest.digest);
    expect(t.node.policy?.digest ?? digest.digest).toBe(digest.digest);
    // The same through /execute, for a document hashed by the requester (what `--file` sends).
    writeFileSync(policyFile, `${approvedText}# second revision\n`);
    const next = await request("lee", {
      operation: "policy-change",
      digest: documentDigest(readFileSync(policyFile)),
    });
    expect(await approve("jo", next)).toMatchObject({ status: 200, body: { status: "pending", counted: 1 } });
    await approve("kim", next);
    const ran = await execute("lee", next);
    expect(ran.status, JSON.stringify(ran.body)).toBe(200);
    expect(ran.body).toMatchObject({ approval: { status: "executed" }, result: { ok: true } });
    expect(t.node.policy?.digest).toBe(documentDigest(readFileSync(policyFile)));
  });

  it("refuses an approval recorded in format 1 (bodies in the clear) and withholds its key-use body", async () => {
    const legacy = (id: string, operation: string, params: Record<string, unknown>) => {
      const text = JSON.stringify(params);
      const now = new Date();
      return t.node.store.putApproval(
        {
          id,
          operation,
          key: "ehr-weill-labs",
          params: text,
          paramsHash: createHash("sha256").update(text).digest("hex"),
          purpose: params.purpose as string,
          requester: "kim",
          organisation: "weill",
          rule: "destroy-two-other-hospitals",
          required: 2,
          reason: null,
          createdAt: now.toISOString(),
          expiresAt: new Date(now.getTime() + 3_600_000).toISOString(),
          state: "pending",
          approvals: [],
          deniedBy: null,
          deniedAt: null,
          note: null,
          executedBy: null,
          executedAt: null,
          executionRequestId: null,
        },
        { time: now.toISOString(), principal: "test", operation: "approvals.request", decision: "allow" },
      );
    };
    const old = "00000000-0000-4000-8000-00000000f001";
    await legacy(old, "destroy", { key: "ehr-weill-labs", operation: "destroy", purpose: "HSYSADMIN" });
    const refused = await execute("kim", old);
    expect(refused).toMatchObject({ status: 409, body: { error: { code: "approval_format" } } });
    const read = "00000000-0000-4000-8000-00000000f002";
    await legacy(read, "decrypt", {
      body: { context: { patient: "MRN-9" }, purpose: "TREAT" },
      key: "ehr-weill-labs",
      operation: "decrypt",
      purpose: "TREAT",
    });
    const shown = await call("lee", "GET", `/v1/approvals/${read}`);
    expect(JSON.stringify(shown.body)).not.toContain("MRN-9");
    expect((shown.body.parameters as { body: string }).body).toMatch(/^withheld/);
  });

  it("audits every step", async () => {
    const events = await t.node.store.searchAudit({ limit: 1000 });
    const ops = new Set(events.map((e) => `${e.event.operation}:${e.event.decision}`));
    for (const op of [
      "approvals.request:allow",
      "approvals.request:deny",
      "approvals.approve:allow",
      "approvals.approve:deny",
      "approvals.deny:allow",
      "approvals.execute:allow",
      "approvals.execute:deny",
    ]) {
      expect(ops, op).toContain(op);
    }
    const executed = events.find((e) => e.event.operation === "keys.destroy.schedule");
    expect(executed?.event.rule).toBe("grant:admins+approval:destroy-two-other-hospitals");
  });
});
