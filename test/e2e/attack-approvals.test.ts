/**
 * Attacks on four eyes and on what rides with it, against one real
 * `custos server` over HTTPS with mutual TLS, every caller a policy
 * principal named by its client certificate's CN (issue 10, findings 8–11
 * and 15): a cross-origin form post carrying a browser's certificate tries
 * to approve; an approved decrypt's patient data is looked for where other
 * principals and operators can read; a disable grant tries to carry other
 * key settings; votes of an approver the policy no longer makes eligible
 * try to count; a review is closed for a purpose no review has.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer } from "./harness.js";

const POLICY = `version: custos-policy/v1
organisations: { weill: { name: Weill }, nyu: { name: NYU }, msk: { name: MSK } }
roles: { key-admin: {}, clinician: {}, auditor: {}, privacy-officer: {} }
conflicts:
  - { roles: [key-admin, clinician] }
  - { roles: [key-admin, auditor] }
  - { roles: [privacy-officer, clinician] }
principals:
  kim: { organisation: weill, roles: [key-admin] }
  lee: { organisation: nyu, roles: [key-admin] }
  jo: { organisation: msk, roles: [key-admin] }
  dr-wong: { organisation: weill, roles: [clinician] }
  pat: { organisation: weill, roles: [privacy-officer] }
  audrey: { organisation: weill, roles: [auditor] }
grants:
  - { id: admins, roles: [key-admin], keys: ["ehr-*"], operations: [create, read, rotate, update, disable, destroy], purposes: [HSYSADMIN] }
  - { id: incident-response, roles: [privacy-officer], keys: ["ehr-*"], operations: [disable], purposes: [HSYSADMIN] }
  - { id: clinicians, roles: [clinician], keys: ["ehr-*"], operations: [encrypt, decrypt], purposes: [TREAT] }
  - { id: audit, roles: [auditor], operations: [read-audit], purposes: [HCOMPL] }
breakGlass:
  roles: [clinician]
  keys: ["ehr-*"]
  operations: [decrypt]
  review: { roles: [privacy-officer], within: 72h }
approvals:
  - { id: destroys, operations: [destroy], keys: ["ehr-*"], required: 1, eligible: { roles: [key-admin] }, outsideRequesterOrganisation: true, expiresAfter: 1h }
  - { id: psychiatry-reads, operations: [decrypt], keys: ["ehr-*-psych"], required: 1, eligible: { roles: [privacy-officer] }, expiresAfter: 1h }
`;

interface Reply {
  status: number;
  text: string;
  body: Record<string, unknown> & { error?: { code: string; rule?: string; message: string } };
}

describe("attacks on approvals, under mutual TLS", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-attack-approvals-"));
  const f = (name: string) => join(dir, name);
  const policyFile = f("policy.yaml");
  let server: ServerProcess;

  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const newKey = (name: string) =>
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`);
  const makeCert = (name: string, subject: string, ext: string) => {
    newKey(name);
    openssl("req", "-new", "-key", `${name}.key`, "-out", `${name}.csr`, "-subj", subject);
    writeFileSync(f(`${name}.ext`), ext);
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    );
  };

  /** A request as `who` (their client certificate), with raw headers and body: what a browser can send. */
  const raw = (
    who: string,
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: string,
  ): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = request(
        `${server.url}${path}`,
        {
          method,
          headers,
          ca: readFileSync(f("ca.pem")),
          cert: readFileSync(f(`${who}.pem`)),
          key: readFileSync(f(`${who}.key`)),
        },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => {
            text += d.toString();
          });
          res.on("end", () => {
            let parsed: Reply["body"] = {};
            try {
              parsed = JSON.parse(text) as Reply["body"];
            } catch {}
            resolve({ status: res.statusCode ?? 0, text, body: parsed });
          });
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  const call = (who: string, method: string, path: string, body?: unknown, purpose?: string) =>
    raw(
      who,
      method,
      path,
      {
        ...(purpose !== undefined && { "x-purpose-of-use": purpose }),
        ...(body !== undefined && { "content-type": "application/json" }),
      },
      body === undefined ? undefined : JSON.stringify(body),
    );
  const admin = (method: string, path: string, body?: unknown) =>
    call("kim", method, path, body, "HSYSADMIN");
  const seen = async (id: string) => ({
    id,
    digest: (await call("audrey", "GET", `/v1/approvals/${id}`)).body.paramsHash as string,
  });
  const until = async (check: () => Promise<boolean>, what: string) => {
    for (let i = 0; i < 300; i++) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}`);
  };

  beforeAll(async () => {
    openssl(
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=attack-ca",
    );
    makeCert("server", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    for (const who of ["kim", "lee", "dr-wong", "pat", "audrey"]) {
      makeCert(who, `/CN=${who}`, "extendedKeyUsage=clientAuth\n");
    }
    writeFileSync(policyFile, POLICY);
    server = await startServer([
      ...["--dev", "--no-tpm", "--data-dir", f("data"), "--policy", policyFile],
      ...["--tls-cert", f("server.pem"), "--tls-key", f("server.key"), "--tls-client-ca", f("ca.pem")],
    ]);
    for (const name of [
      "ehr-weill-old",
      "ehr-weill-notes",
      "ehr-weill-psych",
      "ehr-weill-labs",
      "ehr-weill-scans",
    ]) {
      const created = await admin("POST", "/v1/keys", { name });
      expect(created.status, created.text).toBe(201);
    }
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it("finding 8: a cross-origin form post with the approver's client certificate approves nothing", async () => {
    const requested = await admin("POST", "/v1/approvals", { operation: "destroy", key: "ehr-weill-old" });
    expect(requested.status, requested.text).toBe(201);
    const id = requested.body.id as string;
    const path = `/v1/approvals/${id}/approve`;
    // What evil.example's page makes lee's browser send: a body-less fetch (mode: no-cors), and a form post.
    const bare = await raw("lee", "POST", path, { origin: "https://evil.example" });
    expect(bare.status, bare.text).toBe(403);
    expect(bare.body.error?.code).toBe("origin_not_allowed");
    const form = await raw(
      "lee",
      "POST",
      path,
      { "content-type": "application/x-www-form-urlencoded", origin: "https://evil.example" },
      "note=ok",
    );
    expect(form.status, form.text).toBe(403);
    expect(form.body.error?.code).toBe("origin_not_allowed");
    // Without an Origin (a browser that omits it), a form still cannot vote: JSON only.
    const noOrigin = await raw(
      "lee",
      "POST",
      path,
      { "content-type": "application/x-www-form-urlencoded" },
      "note=ok",
    );
    expect(noOrigin.status, noOrigin.text).toBe(415);
    expect(noOrigin.body.error?.code).toBe("unsupported_media_type");
    expect((await raw("lee", "POST", path)).status).toBe(415);
    const blind = await call("lee", "POST", path, { id, digest: "0".repeat(64) });
    expect(blind.body.error?.code, blind.text).toBe("digest_mismatch");
    const execBare = await raw("kim", "POST", `/v1/approvals/${id}/execute`, {
      origin: "https://evil.example",
    });
    expect(execBare.status).toBe(403);
    const after = await call("audrey", "GET", `/v1/approvals/${id}`);
    expect(after.body).toMatchObject({ status: "pending", counted: 0, approvals: [] });
    // The approver who read it approves with its id and digest.
    const approved = await call("lee", "POST", path, await seen(id));
    expect(approved.status, approved.text).toBe(200);
    expect(approved.body).toMatchObject({ status: "approved", counted: 1 });
  }, 120_000);

  it("finding 9: an approved decrypt shows other principals, the audit and the operator log no patient data", async () => {
    const context = { institution: "weill", patient: "MRN-123", name: "Smith" };
    const enc = await call("dr-wong", "POST", "/v1/keys/ehr-weill-psych/encrypt", {
      purpose: "TREAT",
      context,
      plaintext: Buffer.from("session notes").toString("base64"),
    });
    expect(enc.status, enc.text).toBe(200);
    const body = { purpose: "TREAT", context, ciphertext: enc.body.ciphertext as string };
    const refused = await call("dr-wong", "POST", "/v1/keys/ehr-weill-psych/decrypt", body);
    expect(refused.body.error?.code, refused.text).toBe("approval_required");
    const requested = await call("dr-wong", "POST", "/v1/approvals", {
      operation: "decrypt",
      key: "ehr-weill-psych",
      purpose: "TREAT",
      body,
      reason: "consult",
    });
    expect(requested.status, requested.text).toBe(201);
    const id = requested.body.id as string;

    const shown = await call("audrey", "GET", `/v1/approvals/${id}`);
    expect(shown.status).toBe(200);
    expect(shown.text).not.toMatch(/MRN-123|Smith/);
    // What approvers see: key, operation, purpose, context keys, HMAC'd values (institution is configured clear).
    expect(shown.body).toMatchObject({ operation: "decrypt", key: "ehr-weill-psych", purpose: "TREAT" });
    const params = shown.body.parameters as Record<string, Record<string, string>>;
    expect(Object.keys(params.context ?? {}).sort()).toEqual(["name", "patient"]);
    expect(params.clearContext).toEqual({ institution: "weill" });
    expect((await call("pat", "GET", "/v1/approvals")).text).not.toMatch(/MRN-123|Smith/);
    expect((await call("pat", "POST", `/v1/approvals/${id}/approve`, await seen(id))).status).toBe(200);

    // Another body under the approval is refused, and the refusal carries no values either.
    const other = { ...body, context: { ...context, department: "oncology" } };
    const wrong = await raw(
      "dr-wong",
      "POST",
      "/v1/keys/ehr-weill-psych/decrypt",
      { "content-type": "application/json", "x-approval-id": id },
      JSON.stringify(other),
    );
    expect(wrong.body.error?.code, wrong.text).toBe("approval_mismatch");
    expect(wrong.text).not.toMatch(/MRN-123|Smith/);
    // The requester presents the body approved: it runs.
    const done = await raw(
      "dr-wong",
      "POST",
      "/v1/keys/ehr-weill-psych/decrypt",
      { "content-type": "application/json", "x-approval-id": id },
      JSON.stringify(body),
    );
    expect(done.status, done.text).toBe(200);
    expect(Buffer.from(done.body.plaintext as string, "base64").toString()).toBe("session notes");

    const events = await call("audrey", "GET", "/v1/audit/events?limit=1000", undefined, "HCOMPL");
    expect(events.status, events.text).toBe(200);
    expect(events.text).toContain(id);
    expect(events.text).not.toMatch(/MRN-123|Smith/);
    expect(server.output()).toContain("differ from those approved");
    expect(server.output()).not.toMatch(/MRN-123|Smith/);
  }, 120_000);

  it("finding 10: a disable grant cannot carry a minimum decryption version in the same PATCH", async () => {
    expect((await admin("POST", "/v1/keys/ehr-weill-notes/rotate")).status).toBe(200);
    const patch = await call(
      "pat",
      "PATCH",
      "/v1/keys/ehr-weill-notes",
      { enabled: false, minDecryptionVersion: 2, rotationPeriodSeconds: 86400 },
      "HSYSADMIN",
    );
    expect(patch.status, patch.text).toBe(403);
    expect(patch.body.error?.rule).toBe("default-deny");
    const key = await admin("GET", "/v1/keys/ehr-weill-notes");
    expect(key.body).toMatchObject({
      state: "enabled",
      minDecryptionVersion: 1,
      rotationPeriodSeconds: null,
    });
    // Disabling alone is what the grant allows; the key admin may do both.
    const disable = await call("pat", "PATCH", "/v1/keys/ehr-weill-notes", { enabled: false }, "HSYSADMIN");
    expect(disable.status, disable.text).toBe(200);
    const both = await admin("PATCH", "/v1/keys/ehr-weill-notes", { enabled: true, minDecryptionVersion: 2 });
    expect(both.body, both.text).toMatchObject({ state: "enabled", minDecryptionVersion: 2 });
  }, 120_000);

  it("finding 15: a break-glass review is closed only for a review purpose", async () => {
    const enc = await call("dr-wong", "POST", "/v1/keys/ehr-weill-labs/encrypt", {
      purpose: "TREAT",
      context: { institution: "weill", patient: "MRN-7" },
      plaintext: "aGk=",
    });
    const glass = await call("dr-wong", "POST", "/v1/keys/ehr-weill-labs/decrypt", {
      purpose: "ETREAT",
      context: { institution: "weill", patient: "MRN-7" },
      ciphertext: enc.body.ciphertext,
    });
    expect(glass.status, glass.text).toBe(200);
    const open = await call("audrey", "GET", "/v1/reviews?open=true", undefined, "HCOMPL");
    const review = (open.body.reviews as { id: string; principal: string }[]).find(
      (r) => r.principal === "dr-wong",
    );
    expect(review, open.text).toBeDefined();
    const close = (purpose: string) =>
      call("pat", "POST", `/v1/reviews/${review?.id}/close`, { note: "checked" }, purpose);
    for (const purpose of ["TREAT", "HMARKT", "anything at all", "hcompl"]) {
      const r = await close(purpose);
      expect(r.status, `${purpose}: ${r.text}`).toBe(403);
      expect(r.body.error?.rule).toBe("purpose:review");
    }
    const still = await call("audrey", "GET", "/v1/reviews?open=true", undefined, "HCOMPL");
    expect(still.text).toContain(review?.id as string);
    const closed = await close("HCOMPL");
    expect(closed.status, closed.text).toBe(200);
    expect(closed.body).toMatchObject({ closedBy: "pat" });
  }, 120_000);

  it("finding 11: votes of an approver the reloaded policy no longer makes eligible do not count", async () => {
    const requested = await admin("POST", "/v1/approvals", { operation: "destroy", key: "ehr-weill-scans" });
    expect(requested.status, requested.text).toBe(201);
    const id = requested.body.id as string;
    const vote = await call("lee", "POST", `/v1/approvals/${id}/approve`, await seen(id));
    expect(vote.body, vote.text).toMatchObject({ status: "approved", counted: 1 });
    // Lee, who approved, is moved from key administration to audit.
    writeFileSync(
      policyFile,
      POLICY.replace(
        "lee: { organisation: nyu, roles: [key-admin] }",
        "lee: { organisation: nyu, roles: [auditor] }",
      ),
    );
    server.child.kill("SIGHUP");
    await until(async () => {
      const r = await call("lee", "GET", "/v1/keys/ehr-weill-old", undefined, "HSYSADMIN");
      return r.status === 403;
    }, `the reload:\n${server.output()}`);
    const run = await admin("POST", `/v1/approvals/${id}/execute`, await seen(id));
    expect(run.status, run.text).toBe(403);
    expect(run.body.error?.code).toBe("approvals_lapsed");
    expect(run.body.error?.message).toMatch(/lee no longer eligible under destroys \(roles now: auditor\)/);
    expect((await admin("GET", "/v1/keys/ehr-weill-scans")).body).toMatchObject({ state: "enabled" });
    expect((await admin("GET", `/v1/approvals/${id}`)).body).toMatchObject({ status: "pending", counted: 0 });
  }, 120_000);
});
