/**
 * Attacks on the API's anonymous surface that need no socket, performed in
 * memory with `app.request()` as the review performed them with curl:
 * impossible audit timestamps (finding 13), a custody tree nested 2,500
 * deep sent to init (finding 14), the API document rebuilt per request
 * (finding 17), init under a policy without `ceremony-init` and HEAD
 * audited where GET is not (finding 18). The socket-level attacks (slow
 * repositories, anonymous floods, slow bodies) are in
 * test/e2e/attack-anonymous.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type CustosNode, openNode } from "../../src/api/server.js";
import { b64u } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";
import { PolicyEngine } from "../../src/policy/engine.js";
import { initialisedNode, type TestNode } from "../helpers/node.js";
import { mintTokens } from "../helpers/policy-calls.js";

const dir = mkdtempSync(join(tmpdir(), "custos-attack-anon-"));
let t: TestNode;
beforeAll(async () => {
  t = await initialisedNode();
}, 60_000);
afterAll(async () => {
  await t?.close();
  rmSync(dir, { recursive: true, force: true });
});

const custodian = (id: string) => ({
  custodian: id,
  publicKey: b64u.encode(generateX25519KeyPair().publicKey),
});
/** `{"tree": {threshold: 1, of: [{threshold: 1, of: [... two custodians]}]}}`, `depth` gates deep, as text (JSON.stringify itself overflows at 2,500). */
function nested(depth: number): string {
  const inner = JSON.stringify({ threshold: 2, of: [custodian("a1"), custodian("b2")] });
  return `{"tree":${'{"threshold":1,"of":['.repeat(depth - 1)}${inner}${"]}".repeat(depth - 1)}}`;
}
const post = (node: CustosNode, path: string, body: string, headers: Record<string, string> = {}) =>
  node.app.request(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
const auditSize = (node: CustosNode) => node.store.auditSize();

describe("finding 13: impossible timestamps in audit queries", () => {
  it("answers GET /v1/audit/events?since=2026-13-45T99:99:99Z with a 400 naming the field, not a 500", async () => {
    for (const bad of ["2026-13-45T99:99:99Z", "2026-02-30T10:00:00Z", "2026-11-24T24:00:00.000Z"]) {
      for (const field of ["since", "until"]) {
        const res = await t.node.app.request(`/v1/audit/events?${field}=${bad}`, {
          headers: { authorization: `Bearer ${t.rootToken}` },
        });
        expect(res.status).toBe(400);
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe("invalid_request");
        expect(body.error.message).toContain(field);
      }
    }
    const good = await t.node.app.request("/v1/audit/events?since=2026-02-28T10:00:00Z", {
      headers: { authorization: `Bearer ${t.rootToken}` },
    });
    expect(good.status).toBe(200);
  });
});

describe("finding 14: a custody tree nested 2,500 deep sent to anonymous init", () => {
  it("is refused with a 400 on an uninitialised node, and with a 409 before parsing on an initialised one", async () => {
    const node = await openNode({ dataDir: join(dir, "fresh"), log: pino({ level: "silent" }) });
    try {
      const deep = nested(2500);
      expect(deep.length).toBeLessThan(64 * 1024); // within the body limit: the parser is what is attacked
      const res = await post(node, "/v1/sys/init", deep);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_tree");
      // The bound is the documented depth (docs/FORMATS.md §5.5): 6 levels pass the schema, 7 do not.
      const seven = await post(node, "/v1/sys/init", nested(7));
      expect(seven.status).toBe(400);
      expect(node.seal.initialized).toBe(false);
      const six = await post(node, "/v1/sys/init", nested(6));
      expect(six.status).toBe(200);
    } finally {
      await node.close();
    }
    // An initialised node refuses before reading the body: even one that is not JSON at all.
    for (const body of [nested(2500), "{not json"]) {
      const again = await post(t.node, "/v1/sys/init", body);
      expect(again.status).toBe(409);
      expect(((await again.json()) as { error: { code: string } }).error.code).toBe("already_initialized");
    }
  });
});

describe("finding 17: GET /v1/openapi.json rebuilt per request", () => {
  it("builds the document once and serves the same bytes", async () => {
    const node = await openNode({ dataDir: join(dir, "openapi"), log: pino({ level: "silent" }) });
    try {
      const build = vi.spyOn(node.app, "getOpenAPI31Document");
      const texts: string[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await node.app.request("/v1/openapi.json");
        expect(res.status).toBe(200);
        expect(res.headers.get("content-type")).toContain("application/json");
        texts.push(await res.text());
      }
      expect(build).toHaveBeenCalledTimes(1);
      expect(new Set(texts).size).toBe(1);
      const doc = JSON.parse(texts[0] as string) as { openapi: string; paths: Record<string, unknown> };
      expect(doc.openapi).toBe("3.1.0");
      expect(Object.keys(doc.paths)).toContain("/v1/sys/init");
    } finally {
      await node.close();
    }
  });
});

describe("finding 18: HEAD is audited while GET is not", () => {
  it("leaves no event for HEAD of the public unaudited routes, as for GET", async () => {
    const before = await auditSize(t.node);
    for (const path of ["/v1/sys/seal-status", "/healthz", "/readyz", "/v1/openapi.json"]) {
      for (const method of ["GET", "HEAD"]) {
        const res = await t.node.app.request(path, { method });
        expect(res.status).toBe(200);
      }
    }
    expect(await auditSize(t.node)).toBe(before);
  });
});

const INIT_POLICY = `version: custos-policy/v1
organisations: { nyu: { name: NYU Langone } }
roles: { key-admin: {}, auditor: {} }
principals:
  kai: { organisation: nyu, roles: [key-admin] }
  ada: { organisation: nyu, roles: [auditor] }
grants:
  - { id: init, roles: [key-admin], operations: [ceremony-init], purposes: [HSYSADMIN] }
  - { id: audit, roles: [auditor], operations: [read-audit], purposes: [HCOMPL] }
`;

describe("finding 18: POST /v1/sys/init ignores the policy's ceremony-init", () => {
  it("refuses init to anyone the policy does not grant ceremony-init, and lets the granted principal init", async () => {
    const file = join(dir, "init-policy.yaml");
    writeFileSync(file, INIT_POLICY);
    const node = await openNode({
      dataDir: join(dir, "policy-init"),
      log: pino({ level: "silent" }),
      policy: PolicyEngine.fromFile(file),
    });
    try {
      const tokens = await mintTokens(node.store, ["kai", "ada"]);
      const body = JSON.stringify({
        threshold: 2,
        custodians: ["c1", "c2"].map((id) => ({ id, publicKey: custodian(id).publicKey })),
      });
      const as = (who: string | null, purpose = "HSYSADMIN") =>
        post(node, "/v1/sys/init", body, {
          ...(who && { authorization: `Bearer ${tokens.get(who)}` }),
          "x-purpose-of-use": purpose,
        });
      // The attack: an anonymous caller reaches the fresh node first and becomes its root.
      expect((await as(null)).status).toBe(401);
      const auditor = await as("ada");
      expect(auditor.status).toBe(403);
      expect(((await auditor.json()) as { error: { rule: string } }).error.rule).toBe("default-deny");
      expect((await as("kai", "TREAT")).status).toBe(403);
      expect(node.seal.initialized).toBe(false);
      const ok = await as("kai");
      expect(ok.status).toBe(200);
      expect(node.seal.initialized).toBe(true);
      const events = await node.store.readAudit({ fromSeq: 1, limit: 100 });
      const init = events.filter((e) => e.event.operation === "sys.init");
      expect(init.map((e) => [e.event.principal, e.event.decision])).toEqual([
        ["ada", "deny"],
        ["kai", "deny"],
        ["anonymous", "allow"],
      ]);
      expect(init[2]?.event.rule).toBe("grant:init"); // the grant that let kai init
    } finally {
      await node.close();
    }
  });
});
