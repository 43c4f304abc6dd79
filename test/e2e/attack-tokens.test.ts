/**
 * Issue 10, finding 3, as it was performed: a real `custos server` running
 * the consortium policy plus one `token-create` grant for NYU's key
 * administrators. Lee (key-admin, NYU) held the grant and minted tokens for
 * Jo and Kim — key administrators of MSK and Weill, the approvers his key
 * destruction needed from two other hospitals — approved his own request
 * with them, and minted a token for NYU's storage service, whose role
 * conflicts with his, to decrypt records. Now each mint is refused with the
 * rule that refuses it, and his own approval does not count. Then, with a
 * token desk whose `tokens` rule is narrow (reloaded by SIGHUP): minting for
 * a service works, the token is listed and revoked with the real CLI, is
 * refused on the very next request, and both acts are in the audit log;
 * the linter reports a wide mint rule (CUS012).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, type ServerProcess, startServer } from "./harness.js";

const CONSORTIUM = fileURLToPath(new URL("../../policies/examples/consortium.yaml", import.meta.url));
const ROOT = "dev-root-token-for-token-attacks";

interface Reply {
  status: number;
  body: { error?: { code: string; rule?: string; message: string } } & Record<string, unknown>;
}

/** The attack's policy: the consortium, and NYU's key administrators may mint tokens (no tokens rule: the old grant). */
const ATTACK_GRANT = `grants:
  - id: nyu-key-admins-mint
    description: NYU's key administrators mint tokens for the hospital's services
    roles: [key-admin]
    organisations: [nyu]
    operations: [token-create]
    purposes: [HSYSADMIN]
`;

/** Then a token desk (its own role and person) that may mint only NYU's storage services. */
const DESK = {
  role: "  token-admin: { description: mints tokens for the hospital's services }\n",
  principal: "  tess: { name: Tess Grant, organisation: nyu, roles: [token-admin] }\n",
  grant: `  - id: nyu-token-desk
    roles: [token-admin]
    operations: [token-create, token-read, token-revoke]
    purposes: [HSYSADMIN]
    tokens: { mint: ["{org}-*-store"], roles: [ehr-store] }
`,
};

describe("finding 3: token-create is impersonation of anyone (real server, policy, CLI)", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-attack-tokens-"));
  const policyFile = join(dir, "policy.yaml");
  const consortium = readFileSync(CONSORTIUM, "utf8");
  const attackPolicy = consortium.replace("grants:\n", ATTACK_GRANT);
  const deskPolicy = attackPolicy
    .replace("roles:\n", `roles:\n${DESK.role}`)
    .replace("principals:\n", `principals:\n${DESK.principal}`)
    .replace("grants:\n", `grants:\n${DESK.grant}`);
  const tokens = new Map<string, string>();
  let server: ServerProcess;

  const call = async (
    method: string,
    path: string,
    opts: { as?: string; bearer?: string; purpose?: string; body?: unknown } = {},
  ): Promise<Reply> => {
    const headers: Record<string, string> = {};
    const bearer = opts.bearer ?? (opts.as ? tokens.get(opts.as) : undefined);
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (opts.purpose) headers["x-purpose-of-use"] = opts.purpose;
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers,
      ...(opts.body !== undefined && { body: JSON.stringify(opts.body) }),
    });
    return { status: res.status, body: (await res.json()) as Reply["body"] };
  };
  const mint = (as: string, principal: string) =>
    call("POST", "/v1/tokens", { as, purpose: "HSYSADMIN", body: { principal, roles: ["service"] } });

  beforeAll(async () => {
    writeFileSync(policyFile, attackPolicy);
    const data = ["--dev", "--no-tpm", "--data-dir", join(dir, "data")];
    // Bootstrap as an operator would: the root token mints the staff's tokens before the policy runs.
    const boot = await startServer([...data, "--dev-root-token", ROOT]);
    try {
      for (const who of ["lee", "tess", "vera"]) {
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
    server = await startServer([...data, "--policy", policyFile]);
    for (const name of ["ehr-nyu-notes", "ehr-nyu-old"]) {
      const r = await call("POST", "/v1/keys", { as: "lee", purpose: "HSYSADMIN", body: { name } });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    }
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("finding 3: the grant holder cannot mint other hospitals' approvers or a conflicting service, nor approve their own destruction", async () => {
    const jo = await mint("lee", "jo"); // key-admin of MSK: an approver of destruction
    const kim = await mint("lee", "kim"); // key-admin of Weill: the second approver
    const store = await mint("lee", "nyu-ehr-store"); // ehr-store conflicts with key-admin
    const self = await mint("lee", "lee");

    // The destruction Lee wants, and the approvals he tries to give it.
    const request = await call("POST", "/v1/approvals", {
      as: "lee",
      purpose: "HSYSADMIN",
      body: { operation: "destroy", key: "ehr-nyu-old" },
    });
    expect(request.status, JSON.stringify(request.body)).toBe(201);
    const id = (request.body.approval as { id: string } | undefined)?.id ?? (request.body.id as string);
    const approve = (bearer: string) =>
      call("POST", `/v1/approvals/${id}/approve`, { bearer, purpose: "HSYSADMIN", body: { note: "ok" } });
    const ownVote = await approve(tokens.get("lee")!);
    for (const minted of [jo, kim]) if (minted.status === 201) await approve(minted.body.token as string);
    const execute = await call("POST", `/v1/approvals/${id}/execute`, { as: "lee", purpose: "HSYSADMIN" });

    // Decrypting patients' records as the storage service, had its token been minted.
    let decrypted = false;
    if (store.status === 201) {
      const bearer = store.body.token as string;
      const context = { institution: "nyu", patient: "MRN-1" };
      const enc = await call("POST", "/v1/keys/ehr-nyu-notes/encrypt", {
        bearer,
        body: { purpose: "TREAT", context, plaintext: "aGVsbG8=" },
      });
      const dec = await call("POST", "/v1/keys/ehr-nyu-notes/decrypt", {
        bearer,
        body: { purpose: "TREAT", context, ciphertext: enc.body.ciphertext },
      });
      decrypted = dec.status === 200;
    }

    expect({
      jo: [jo.status, jo.body.error?.rule],
      kim: [kim.status, kim.body.error?.rule],
      store: [store.status, store.body.error?.rule],
      self: self.status,
      ownVoteCounted: ownVote.status < 300,
      destroyed: execute.status < 300,
      decrypted,
    }).toEqual({
      jo: [403, "tokens:other-organisation"],
      kim: [403, "tokens:other-organisation"],
      store: [403, "tokens:sod:key-admin/ehr-store"],
      self: 403, // lee approves destructions: no minted token is ever his
      ownVoteCounted: false,
      destroyed: false,
      decrypted: false,
    });
    const pending = await call("GET", `/v1/approvals/${id}`, { as: "lee", purpose: "HSYSADMIN" });
    const approval = (pending.body.approval ?? pending.body) as { status: string; counted: number };
    expect(approval).toMatchObject({ status: "pending", counted: 0 });
  }, 60_000);

  it("finding 3: a narrow token desk mints a service token; it is listed, revoked by the CLI and refused on the very next request; mint and revocation are audited", async () => {
    writeFileSync(policyFile, deskPolicy);
    server.child.kill("SIGHUP");
    const end = Date.now() + 20_000;
    let minted = await mint("tess", "nyu-ehr-store");
    while (minted.status !== 201 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      minted = await mint("tess", "nyu-ehr-store");
    }
    expect(minted.status, JSON.stringify(minted.body)).toBe(201);
    const expiresIn = Date.parse(minted.body.expiresAt as string) - Date.now();
    expect(expiresIn).toBeGreaterThan(29 * 86400_000); // 30 days by default
    expect(expiresIn).toBeLessThanOrEqual(30 * 86400_000);

    // Still refused under the desk's rule: another hospital's service, an approver, a reserved name.
    expect((await mint("tess", "msk-ehr-store")).body.error?.rule).toBe("tokens:other-organisation");
    expect((await mint("tess", "lee")).body.error?.rule).toBe("tokens:privileged");
    expect((await mint("tess", "custos")).body.error?.rule).toBe("tokens:reserved-name");

    const bearer = minted.body.token as string;
    const use = () =>
      call("POST", "/v1/keys/ehr-nyu-notes/datakey", {
        bearer,
        body: { purpose: "TREAT", context: { institution: "nyu", patient: "MRN-2" } },
      });
    expect((await use()).status).toBe(200);

    const env = { CUSTOS_ADDR: server.url, CUSTOS_TOKEN: tokens.get("tess")!, CUSTOS_PURPOSE: "HSYSADMIN" };
    const list = await runCli(["token", "list", "--format", "json"], env);
    expect(list.code, list.stderr).toBe(0);
    const listed = (JSON.parse(list.stdout) as { tokens: Record<string, unknown>[] }).tokens;
    const entry = listed.find((t) => t.principal === "nyu-ehr-store")!;
    expect(entry).toMatchObject({
      createdBy: "tess",
      mintedUnder: "nyu-token-desk",
      expiresAt: minted.body.expiresAt,
      neverExpires: false,
    });
    expect(entry.id).toMatch(/^[0-9a-f]{16}$/);
    expect(entry.lastUsedAt).toEqual(expect.any(String));
    // The development root token never expires, and the listing says so.
    expect(listed.find((t) => t.principal === "root")).toMatchObject({ neverExpires: true, expiresAt: null });
    const text = await runCli(["token", "list"], env);
    expect(text.stdout).toMatch(/root .*NEVER/);

    const revoked = await runCli(["token", "revoke", entry.id as string], env);
    expect(revoked.code, revoked.stderr).toBe(0);
    const after = await use();
    expect(after.status).toBe(401);
    const again = await runCli(["token", "revoke", entry.id as string], env);
    expect(again.code).toBe(1);

    const audited = async (operation: string) =>
      (
        (await call("GET", `/v1/audit/events?operation=${operation}`, { as: "vera", purpose: "HCOMPL" })).body
          .events as { event: { principal: string; decision: string; reason?: string } }[]
      ).map((e) => e.event);
    expect(await audited("tokens.create")).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          principal: "tess",
          decision: "allow",
          reason: expect.stringContaining(entry.id as string),
        }),
        expect.objectContaining({
          principal: "lee",
          decision: "deny",
          reason: expect.stringContaining("token for jo refused"),
        }),
      ]),
    );
    expect(await audited("tokens.revoke")).toEqual([
      expect.objectContaining({
        principal: "tess",
        decision: "allow",
        reason: expect.stringContaining(entry.id as string),
      }),
    ]);
  }, 120_000);

  it("finding 3: the linter reports a grant that mints for other organisations or conflicting roles (CUS012)", async () => {
    const wide = join(dir, "wide.yaml");
    writeFileSync(
      wide,
      deskPolicy.replace(
        'tokens: { mint: ["{org}-*-store"], roles: [ehr-store] }',
        'tokens: { mint: ["*"], roles: [ehr-store, key-admin, clinician] }',
      ),
    );
    const r = await runCli(["policy", "lint", wide]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(
      /error CUS012 tokens\/mint-beyond-minter: grant nyu-token-desk lets tess of nyu mint credentials for \S+ of (weill|msk)/,
    );
    // The attack's own grant, without a tokens rule, now mints nothing, and the linter says so.
    const attack = join(dir, "attack.yaml");
    writeFileSync(attack, attackPolicy);
    const a = await runCli(["policy", "lint", attack]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toContain(
      "warning CUS011 grant/allows-nothing: grant nyu-key-admins-mint allows token-create without a tokens rule",
    );
  }, 60_000);
});
