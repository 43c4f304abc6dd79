/**
 * One real `custos server` process running policies/examples/consortium.yaml
 * over HTTPS with mutual TLS and JWT keys, as an operator would start it:
 * tokens are minted before the policy is switched on (a first start without
 * it), then every caller is a policy principal. Certificates are made with
 * openssl in a temporary directory, JWTs with jose. Covers: a `cst_` token
 * mapped by name, a sample of the authorisation matrix over the wire, JWTs
 * (good, expired, wrong audience or issuer, alg none, unknown kid), client
 * certificates (good, none, another CA), break-glass flagged and reviewed,
 * and reloads (SIGHUP good and bad, POST needing approvals, POST refused and
 * accepted). A policy holding conflicting roles stops the start (exit 2).
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, type ServerProcess, startServer } from "./harness.js";

const CONSORTIUM = fileURLToPath(new URL("../../policies/examples/consortium.yaml", import.meta.url));
const ISSUER = "https://login.nyulangone.example";
const AUDIENCE = "custos";
const ROOT = "dev-root-token-for-policy-tests";
type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];

interface Reply {
  status: number;
  body: { error?: { code: string; rule?: string; message: string } } & Record<string, unknown>;
}

describe("policy server over HTTPS (tokens, JWT, mutual TLS, reload, break-glass)", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-policy-e2e-"));
  const f = (name: string) => join(dir, name);
  const policyFile = f("policy.yaml");
  const original = readFileSync(CONSORTIUM, "utf8");
  let server: ServerProcess;
  const tokens = new Map<string, string>();
  let signingKey: SigningKey;
  let strangerKey: SigningKey;
  let ciphertext = "";

  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const makeCa = (name: string) =>
    openssl(
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
    );
  const makeCert = (name: string, ca: string, subject: string, ext: string) => {
    openssl(
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      subject,
    );
    writeFileSync(f(`${name}.ext`), ext);
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.pem`,
      "-CAkey",
      `${ca}.key`,
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    );
  };

  const call = (
    method: string,
    path: string,
    opts: { bearer?: string; as?: string; cert?: string; purpose?: string; body?: unknown } = {},
  ): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const headers: Record<string, string> = {};
      const bearer = opts.bearer ?? (opts.as ? tokens.get(opts.as) : undefined);
      if (bearer) headers.authorization = `Bearer ${bearer}`;
      if (opts.purpose) headers["x-purpose-of-use"] = opts.purpose;
      const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
      if (payload) headers["content-type"] = "application/json";
      const req = request(
        `${server.url}${path}`,
        {
          method,
          headers,
          ca: readFileSync(f("ca.pem")),
          ...(opts.cert && {
            cert: readFileSync(f(`${opts.cert}.pem`)),
            key: readFileSync(f(`${opts.cert}.key`)),
          }),
        },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => {
            text += d.toString();
          });
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Reply["body"] }),
          );
        },
      );
      req.on("error", reject);
      req.end(payload);
    });

  const decrypt = (who: string, key: string, purpose: string, ct = ciphertext) =>
    call("POST", `/v1/keys/${key}/decrypt`, {
      as: who,
      body: { purpose, context: { institution: key.split("-")[1], patient: "MRN-1" }, ciphertext: ct },
    });

  const jwt = (
    claims: Record<string, unknown> = {},
    opts: { key?: SigningKey; kid?: string; exp?: string } = {},
  ) =>
    new SignJWT({ groups: ["ehr-clinicians"], ...claims })
      .setProtectedHeader({ alg: "ES256", kid: opts.kid ?? "k1" })
      .setIssuer((claims.iss as string | undefined) ?? ISSUER)
      .setAudience((claims.aud as string | undefined) ?? AUDIENCE)
      .setSubject("dr-sso-1")
      .setIssuedAt()
      .setExpirationTime(opts.exp ?? "5m")
      .sign(opts.key ?? signingKey);

  const tlsFlags = [
    "--tls-cert",
    f("server.pem"),
    "--tls-key",
    f("server.key"),
    "--tls-client-ca",
    f("ca.pem"),
  ];
  const jwtFlags = ["--jwks-file", f("jwks.json"), "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE];
  const data = ["--dev", "--no-tpm", "--data-dir", f("data")];

  beforeAll(async () => {
    makeCa("ca");
    makeCa("other-ca");
    makeCert("server", "ca", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    makeCert("lee", "ca", "/O=NYU Langone/CN=lee", "extendedKeyUsage=clientAuth\n");
    makeCert("intruder", "other-ca", "/O=NYU Langone/CN=lee", "extendedKeyUsage=clientAuth\n");
    const pair = await generateKeyPair("ES256", { extractable: true });
    signingKey = pair.privateKey;
    strangerKey = (await generateKeyPair("ES256")).privateKey;
    writeFileSync(
      f("jwks.json"),
      JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256" }] }),
    );
    writeFileSync(policyFile, original);

    // First start without a policy: the root token mints tokens for the policy's principals.
    const boot = await startServer([...data, "--dev-root-token", ROOT]);
    try {
      for (const who of ["nyu-ehr-store", "dr-patel", "dr-wong", "vera", "lee", "omar"]) {
        const r = await fetch(`${boot.url}/v1/tokens`, {
          method: "POST",
          headers: { authorization: `Bearer ${ROOT}`, "content-type": "application/json" },
          body: JSON.stringify({ principal: who, roles: ["service"] }),
        });
        expect(r.status).toBe(201);
        tokens.set(who, ((await r.json()) as { token: string }).token);
      }
    } finally {
      await boot.stop();
    }
    server = await startServer([...data, "--policy", policyFile, ...tlsFlags, ...jwtFlags]);
    expect(server.url).toMatch(/^https:/);
    const created = await call("POST", "/v1/keys", {
      cert: "lee",
      purpose: "HSYSADMIN",
      body: { name: "ehr-nyu-notes" },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const enc = await call("POST", "/v1/keys/ehr-nyu-notes/encrypt", {
      as: "nyu-ehr-store",
      body: { purpose: "TREAT", context: { institution: "nyu", patient: "MRN-1" }, plaintext: "aGVsbG8=" },
    });
    expect(enc.status, JSON.stringify(enc.body)).toBe(200);
    ciphertext = enc.body.ciphertext as string;
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("maps a cst_ token to the policy principal of the same name; the root token is nobody", async () => {
    expect((await decrypt("dr-patel", "ehr-nyu-notes", "TREAT")).status).toBe(200);
    const root = await call("GET", "/v1/keys", { bearer: ROOT, purpose: "HSYSADMIN" });
    expect(root.status).toBe(403);
    expect(root.body.error).toMatchObject({ code: "unknown_principal", rule: "identity:undeclared" });
  });

  it("refuses over the wire what the policy does not grant, naming the rule", async () => {
    const payment = await decrypt("dr-patel", "ehr-nyu-notes", "HPAYMT");
    expect(payment.status).toBe(403);
    expect(payment.body.error?.rule).toBe("default-deny");
    const operator = await decrypt("omar", "ehr-nyu-notes", "TREAT");
    expect(operator.body.error?.rule).toBe("default-deny");
    const list = await call("GET", "/v1/keys", { as: "dr-patel", purpose: "TREAT" });
    expect(list.body.error?.rule).toBe("default-deny");
    const events = await call("GET", "/v1/audit/events?principal=omar&decision=deny", {
      as: "vera",
      purpose: "HCOMPL",
    });
    expect(events.status).toBe(200);
    const logged = (events.body.events as { event: { rule?: string; purpose?: string } }[]).map(
      (e) => e.event,
    );
    expect(logged).toContainEqual(expect.objectContaining({ rule: "default-deny", purpose: "TREAT" }));
  });

  it("accepts a good JWT mapped by the identity rule and refuses bad ones", async () => {
    const good = await jwt();
    const ok = await call("POST", "/v1/keys/ehr-nyu-notes/decrypt", {
      bearer: good,
      body: { purpose: "TREAT", context: { institution: "nyu", patient: "MRN-1" }, ciphertext },
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    const header = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const payload = header({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: "dr-sso-1",
      groups: ["ehr-clinicians"],
      exp: Math.floor(Date.now() / 1000) + 300,
    });
    const bad = {
      expired: await jwt({}, { exp: "-10m" }),
      "wrong audience": await jwt({ aud: "someone-else" }),
      "wrong issuer": await jwt({ iss: "https://evil.example" }),
      "alg none": `${header({ alg: "none" })}.${payload}.`,
      "unknown kid": await jwt({}, { key: strangerKey, kid: "k2" }),
      "known kid, wrong key": await jwt({}, { key: strangerKey }),
    };
    for (const [what, token] of Object.entries(bad)) {
      const r = await call("GET", "/v1/keys", { bearer: token, purpose: "TREAT" });
      expect(r.status, what).toBe(401);
      expect(r.body.error?.code, what).toBe("unauthenticated");
    }
    // Valid, but no identity rule maps a token without the clinicians' group.
    const unmapped = await call("GET", "/v1/keys", {
      bearer: await jwt({ groups: ["visitors"] }),
      purpose: "TREAT",
    });
    expect(unmapped.status).toBe(401);
  });

  it("maps a verified client certificate to a principal; none, or another CA's, is 401", async () => {
    const ok = await call("GET", "/v1/keys", { cert: "lee", purpose: "HSYSADMIN" });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    const none = await call("GET", "/v1/keys", { purpose: "HSYSADMIN" });
    expect(none.status).toBe(401);
    const other = await call("GET", "/v1/keys", { cert: "intruder", purpose: "HSYSADMIN" });
    expect(other.status).toBe(401);
    expect(other.body.error?.code).toBe("unauthenticated");
  });

  it("flags a break-glass use and has it closed by a distinct reviewer", async () => {
    const use = await decrypt("dr-wong", "ehr-nyu-notes", "ETREAT");
    expect(use.status, JSON.stringify(use.body)).toBe(200);
    const open = await call("GET", "/v1/reviews?open=true", { as: "vera", purpose: "HCOMPL" });
    expect(open.status).toBe(200);
    const review = (open.body.reviews as { id: string; principal: string; requestId: string }[]).find(
      (r) => r.principal === "dr-wong",
    );
    expect(review).toBeDefined();
    const events = await call("GET", "/v1/audit/events?principal=dr-wong&purpose=ETREAT", {
      as: "vera",
      purpose: "HCOMPL",
    });
    const flagged = (events.body.events as { event: Record<string, unknown> }[]).map((e) => e.event);
    expect(flagged.length).toBeGreaterThanOrEqual(2);
    for (const e of flagged) expect(e).toMatchObject({ breakGlass: true, rule: "break-glass" });

    // The CLI's report, over HTTPS with the test CA, as the privacy officer.
    const env = {
      CUSTOS_ADDR: server.url,
      CUSTOS_TOKEN: tokens.get("vera") ?? "",
      CUSTOS_PURPOSE: "HCOMPL",
      NODE_EXTRA_CA_CERTS: f("ca.pem"),
    };
    const awaiting = await runCli(["audit", "report", "break-glass", "--format", "json"], env);
    expect(awaiting.code, awaiting.stderr).toBe(0);
    expect(JSON.parse(awaiting.stdout)).toContainEqual(
      expect.objectContaining({
        principal: "dr-wong",
        key: "ehr-nyu-notes",
        purpose: "ETREAT",
        decision: expect.stringMatching(/^awaiting review by privacy-officer/),
      }),
    );

    const self = await call("POST", `/v1/reviews/${review!.id}/close`, {
      as: "dr-wong",
      purpose: "HCOMPL",
      body: { note: "it was fine" },
    });
    expect(self.status).toBe(403);
    const closed = await call("POST", `/v1/reviews/${review!.id}/close`, {
      as: "vera",
      purpose: "HCOMPL",
      body: { note: "emergency admission confirmed" },
    });
    expect(closed.status, JSON.stringify(closed.body)).toBe(200);
    expect(closed.body).toMatchObject({ closedBy: "vera" });
    const again = await call("POST", `/v1/reviews/${review!.id}/close`, {
      as: "vera",
      purpose: "HCOMPL",
      body: { note: "x" },
    });
    expect(again.status).toBe(409);
    const csv = await runCli(["audit", "report", "break-glass", "--all", "--format", "csv"], env);
    expect(csv.stdout).toContain("reviewed by vera");
    const text = await runCli(["audit", "report", "break-glass"], env);
    expect(text.stdout).not.toContain(review!.id);
  });

  it("reloads on SIGHUP and POST; a bad document is refused and the running policy stays", async () => {
    const crossTreatment = "clinicians-consortium-treatment";
    const reload = await call("POST", "/v1/sys/policy/reload", { cert: "lee", purpose: "HSYSADMIN" });
    expect(reload.status).toBe(403);
    expect(reload.body.error).toMatchObject({
      code: "approval_required",
      rule: "approval:root-and-policy-changes",
    });

    // v2: policy changes need no approvals, and the cross-hospital treatment grant is gone.
    const v2 = original
      .replace(
        "operations: [ceremony-rekey, ceremony-rotate-root, ceremony-generate-recovery, policy-change]",
        "operations: [ceremony-rekey, ceremony-rotate-root, ceremony-generate-recovery]",
      )
      .replace(`  - id: ${crossTreatment}\n`, `  - id: ${crossTreatment}\n    organisations: [msk]\n`);
    expect(v2).not.toBe(original);
    expect((await decrypt("dr-wong", "ehr-nyu-notes", "TREAT")).status).toBe(200);
    writeFileSync(policyFile, v2);
    server.child.kill("SIGHUP");
    await until(async () => (await decrypt("dr-wong", "ehr-nyu-notes", "TREAT")).status === 403);

    // A principal with conflicting roles: refused, v2 stays.
    writeFileSync(
      policyFile,
      v2.replace(
        "alice: { name: Alice Chen, organisation: nyu, roles: [custodian] }",
        "alice: { name: Alice Chen, organisation: nyu, roles: [custodian, dc-operator] }",
      ),
    );
    server.child.kill("SIGHUP");
    await until(async () => server.output().includes("CUS003"));
    expect((await decrypt("dr-wong", "ehr-nyu-notes", "TREAT")).status).toBe(403);

    const refused = await call("POST", "/v1/sys/policy/reload", { cert: "lee", purpose: "HSYSADMIN" });
    expect(refused.status).toBe(422);
    expect(refused.body.error?.code).toBe("policy_refused");
    expect(refused.body.error?.message).toContain("CUS003");

    writeFileSync(policyFile, original);
    const accepted = await call("POST", "/v1/sys/policy/reload", { cert: "lee", purpose: "HSYSADMIN" });
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(200);
    expect((await decrypt("dr-wong", "ehr-nyu-notes", "TREAT")).status).toBe(200);
  }, 60_000);

  it("refuses to start with a policy (CUSTOS_POLICY) in which a principal holds conflicting roles (exit 2)", async () => {
    const bad = f(`bad-${randomUUID()}.yaml`);
    writeFileSync(
      bad,
      original.replace(
        "wes: { name: Wes Hall, organisation: weill, roles: [dc-operator] }",
        "wes: { name: Wes Hall, organisation: weill, roles: [dc-operator, custodian] }",
      ),
    );
    // Through CUSTOS_POLICY, the flag's environment variable.
    const r = await runCli(["server", "--dev", "--no-tpm", "--listen", "127.0.0.1:0"], {
      CUSTOS_POLICY: bad,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refused.*\n.*CUS003 sod\/conflicting-roles/);
  }, 60_000);
});

async function until(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("condition not met in time");
}
