/**
 * The authorisation matrix, generated from policies/examples/consortium.yaml:
 * every protected route × one principal of every role × every HL7 purpose
 * of use (× an own and another hospital's key for key routes), sent to a
 * node running the policy. The bulk goes through `app.request()` on one
 * node (a process per request would take hours); test/e2e/policy-server
 * sends a sample over real HTTPS. Whatever the policy does not grant must
 * be refused with 403 naming the rule that refused it, in the response and
 * in the audit event; whatever it grants must get past the gate. The
 * expected decision comes from `decide()` on the same document, and a few
 * rows are also stated by hand so that the oracle itself is checked.
 */
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PURPOSES_OF_USE } from "../../src/keys/purpose.js";
import type { Operation } from "../../src/policy/authorizer.js";
import { PolicyEngine } from "../../src/policy/engine.js";
import { initialisedNode, type TestNode } from "../helpers/node.js";
import { caller, mintTokens } from "../helpers/policy-calls.js";

const CONSORTIUM = fileURLToPath(new URL("../../policies/examples/consortium.yaml", import.meta.url));

/** One principal per role of the consortium, all of NYU, plus a Weill clinician. */
const PRINCIPALS = [
  "alice", // custodian
  "omar", // dc-operator
  "quinn", // release-engineer
  "lee", // key-admin
  "uma", // auditor
  "dr-patel", // clinician
  "nyu-ehr-store", // ehr-store
  "vera", // privacy-officer
  "dr-wong", // clinician of Weill
] as const;

interface Route {
  operation: Operation;
  method: string;
  path: (key: string) => string;
  body?: (key: string, purpose: string, ciphertext: string) => unknown;
  /** Key routes run against an own and another hospital's key. */
  keyed: boolean;
}

const ctx = (key: string) => ({ institution: key.split("-")[1] ?? "", patient: "MRN-0012345" });
const use = (key: string, purpose: string) => ({ purpose, context: ctx(key) });

const ROUTES: Route[] = [
  { operation: "keys.list", method: "GET", path: () => "/v1/keys", keyed: false },
  { operation: "keys.read", method: "GET", path: (k) => `/v1/keys/${k}`, keyed: true },
  {
    operation: "keys.create",
    method: "POST",
    path: () => "/v1/keys",
    body: (k) => ({ name: `${k}-${randomBytes(4).toString("hex")}` }),
    keyed: true,
  },
  { operation: "keys.rotate", method: "POST", path: (k) => `/v1/keys/${k}-admin/rotate`, keyed: true },
  {
    operation: "keys.update",
    method: "PATCH",
    path: (k) => `/v1/keys/${k}-admin`,
    body: () => ({ rotationPeriodSeconds: 7200 }),
    keyed: true,
  },
  {
    operation: "keys.disable",
    method: "PATCH",
    path: (k) => `/v1/keys/${k}-admin`,
    body: () => ({ enabled: false }),
    keyed: true,
  },
  { operation: "keys.destroy", method: "DELETE", path: (k) => `/v1/keys/${k}-admin`, keyed: true },
  {
    operation: "keys.cancel-destruction",
    method: "POST",
    path: (k) => `/v1/keys/${k}-admin/cancel-destruction`,
    keyed: true,
  },
  { operation: "keys.datakey", method: "POST", path: (k) => `/v1/keys/${k}/datakey`, body: use, keyed: true },
  {
    operation: "keys.datakey",
    method: "POST",
    path: (k) => `/v1/keys/${k}/datakey/wrapped`,
    body: use,
    keyed: true,
  },
  {
    operation: "keys.encrypt",
    method: "POST",
    path: (k) => `/v1/keys/${k}/encrypt`,
    body: (k, p) => ({ ...use(k, p), plaintext: "aGVsbG8=" }),
    keyed: true,
  },
  {
    operation: "keys.decrypt",
    method: "POST",
    path: (k) => `/v1/keys/${k}/decrypt`,
    body: (k, p, ct) => ({ ...use(k, p), ciphertext: ct }),
    keyed: true,
  },
  {
    operation: "keys.rewrap",
    method: "POST",
    path: (k) => `/v1/keys/${k}/rewrap`,
    body: (k, p, ct) => ({ ...use(k, p), ciphertext: ct }),
    keyed: true,
  },
  {
    operation: "tokens.create",
    method: "POST",
    path: () => "/v1/tokens",
    body: () => ({ principal: "mallory", roles: ["service"] }),
    keyed: false,
  },
  { operation: "tokens.read", method: "GET", path: () => "/v1/tokens", keyed: false },
  { operation: "tokens.revoke", method: "DELETE", path: () => "/v1/tokens/0123456789abcdef", keyed: false },
  { operation: "audit.read", method: "GET", path: () => "/v1/audit/events?limit=1", keyed: false },
  { operation: "audit.read", method: "GET", path: () => "/v1/audit/head", keyed: false },
  {
    operation: "audit.read",
    method: "GET",
    path: () => "/v1/audit/proof/inclusion?index=0&size=1",
    keyed: false,
  },
  {
    operation: "audit.read",
    method: "GET",
    path: () => "/v1/audit/proof/consistency?from=1&to=1",
    keyed: false,
  },
  { operation: "sys.unseal.reset", method: "POST", path: () => "/v1/sys/unseal/reset", keyed: false },
  { operation: "sys.tpm-seal.read", method: "GET", path: () => "/v1/sys/tpm-seal", keyed: false },
  {
    operation: "sys.tpm-seal.write",
    method: "POST",
    path: () => "/v1/sys/tpm-seal",
    body: () => ({ pcrs: [7] }),
    keyed: false,
  },
  { operation: "sys.tpm-seal.write", method: "DELETE", path: () => "/v1/sys/tpm-seal", keyed: false },
  { operation: "sys.policy.reload", method: "POST", path: () => "/v1/sys/policy/reload", keyed: false },
  { operation: "reviews.read", method: "GET", path: () => "/v1/reviews?open=true", keyed: false },
  {
    operation: "reviews.close",
    method: "POST",
    path: () => "/v1/reviews/00000000-0000-4000-8000-000000000000/close",
    body: () => ({ note: "checked" }),
    keyed: false,
  },
  // Last: a custodian allowed to seal really seals the node.
  { operation: "sys.seal", method: "POST", path: () => "/v1/sys/seal", keyed: false },
];

const KEYS = ["ehr-nyu-notes", "ehr-msk-notes"];

describe("authorisation matrix of policies/examples/consortium.yaml", () => {
  let t: TestNode;
  let engine: PolicyEngine;
  let tokens = new Map<string, string>();
  const ciphertexts = new Map<string, string>();

  const call = (...args: Parameters<ReturnType<typeof caller>>) => caller(() => t.node.app, tokens)(...args);

  beforeAll(async () => {
    engine = PolicyEngine.fromFile(CONSORTIUM);
    t = await initialisedNode({ policy: engine });
    // Roles in a token are the role table's; with a policy the policy's roles count.
    tokens = await mintTokens(t.node.store, [...PRINCIPALS, "jo", "msk-ehr-store", "pat"]);
    const admin = { "ehr-nyu": "lee", "ehr-msk": "jo" } as const;
    const store = { "ehr-nyu": "nyu-ehr-store", "ehr-msk": "msk-ehr-store" } as const;
    for (const prefix of ["ehr-nyu", "ehr-msk"] as const) {
      for (const name of [`${prefix}-notes`, `${prefix}-notes-admin`]) {
        const r = await call(admin[prefix], "POST", "/v1/keys", { name }, "HSYSADMIN");
        expect(r.status, JSON.stringify(r.body)).toBe(201);
      }
      const key = `${prefix}-notes`;
      const enc = await call(store[prefix], "POST", `/v1/keys/${key}/encrypt`, {
        ...use(key, "TREAT"),
        plaintext: "aGVsbG8=",
      });
      expect(enc.status, JSON.stringify(enc.body)).toBe(200);
      ciphertexts.set(key, enc.body.ciphertext as string);
    }
  }, 60_000);

  afterAll(async () => {
    await t?.close();
  });

  it("states a few rows by hand (checks the oracle)", async () => {
    const notes = (who: string, purpose: string, key = "ehr-nyu-notes") =>
      call(who, "POST", `/v1/keys/${key}/decrypt`, {
        ...use(key, purpose),
        ciphertext: ciphertexts.get(key),
      });
    expect((await notes("dr-patel", "TREAT")).status).toBe(200);
    expect((await notes("dr-patel", "TREAT", "ehr-msk-notes")).status).toBe(200);
    expect((await notes("nyu-ehr-store", "HPAYMT")).status).toBe(200);
    const payment = await notes("dr-patel", "HPAYMT");
    expect(payment.status).toBe(403);
    expect(payment.body.error?.rule).toBe("default-deny");
    const operator = await notes("omar", "TREAT");
    expect(operator.status).toBe(403);
    expect(operator.body.error?.rule).toBe("default-deny");
    const otherStore = await notes("nyu-ehr-store", "TREAT", "ehr-msk-notes");
    expect(otherStore.status).toBe(403);
    // The context must name the caller's own institution for the storage service.
    const wrongInstitution = await call("nyu-ehr-store", "POST", "/v1/keys/ehr-nyu-notes/datakey", {
      purpose: "TREAT",
      context: { institution: "msk" },
    });
    expect(wrongInstitution.status).toBe(403);
    const destroy = await call("lee", "DELETE", "/v1/keys/ehr-nyu-notes-admin", undefined, "HSYSADMIN");
    expect(destroy.status).toBe(403);
    expect(destroy.body.error).toMatchObject({
      code: "approval_required",
      rule: "approval:destroy-two-other-hospitals",
    });
    const noPurpose = await call("lee", "GET", "/v1/keys");
    expect(noPurpose.body.error?.rule).toBe("purpose:missing");
  });

  it("refuses everything not granted and names the rule; lets through everything granted", async () => {
    let allowed = 0;
    let denied = 0;
    const failures: string[] = [];
    for (const route of ROUTES) {
      for (const who of PRINCIPALS) {
        const principal = engine.resolve({ id: who, roles: [] });
        expect(principal, who).not.toBeNull();
        const cases = PURPOSES_OF_USE.flatMap((purpose) =>
          (route.keyed ? KEYS : [undefined]).map((key) => ({ purpose, key })),
        );
        // Concurrent within a route and principal: the store batches their audit events.
        const results = await Promise.all(
          cases.map(async ({ purpose, key }) => {
            const k = key ?? "ehr-nyu-notes";
            const body = route.body?.(k, purpose, ciphertexts.get(k) ?? "");
            const inBody =
              route.operation.startsWith("keys.") && body !== undefined && "purpose" in (body as object);
            const res = await call(who, route.method, route.path(k), body, inBody ? undefined : purpose);
            const pathKey = /^\/v1\/keys\/([^/?]+)/.exec(route.path(k))?.[1];
            const decisionKey = route.operation === "keys.create" ? (body as { name: string }).name : pathKey;
            const expected = engine.decide({
              principal: principal!,
              operation: route.operation,
              key: decisionKey,
              purpose,
              context: inBody ? ctx(k) : undefined,
            });
            return { purpose, key, res, expected };
          }),
        );
        for (const { purpose, key, res, expected } of results) {
          const where = `${route.method} ${route.path(key ?? "k")} as ${who} for ${purpose}`;
          if (expected.allow) {
            allowed++;
            if (res.status === 401 || res.status === 403)
              failures.push(`${where}: expected past the gate (${expected.rule}), got ${res.status}`);
          } else {
            denied++;
            if (res.status !== 403 || res.body.error?.rule !== expected.rule) {
              failures.push(
                `${where}: expected 403 ${expected.rule}, got ${res.status} ${JSON.stringify(res.body.error)}`,
              );
            }
            if (expected.needsApproval && res.body.error?.code !== "approval_required")
              failures.push(`${where}: expected approval_required`);
          }
        }
      }
    }
    expect(failures.slice(0, 20)).toEqual([]);
    console.info(`authorisation matrix: ${allowed} allowed, ${denied} denied`);
    expect(denied).toBeGreaterThan(allowed);
    // Dr. Patel's ETREAT decrypt of MSK's record is break-glass: flagged and awaiting review.
    const reviews = await t.node.store.listReviews({ open: true });
    expect(reviews.some((r) => r.principal === "dr-patel" && r.key === "ehr-msk-notes")).toBe(true);
    const flagged = await t.node.store.searchAudit({
      principal: "dr-patel",
      key: "ehr-msk-notes",
      purpose: "ETREAT",
      decision: "allow",
    });
    expect(flagged.map((e) => e.event.operation).sort()).toEqual(["keys.decrypt", "review.open"]);
    for (const e of flagged) expect(e.event).toMatchObject({ breakGlass: true, rule: "break-glass" });
    expect(allowed).toBeGreaterThan(50);

    // Every refusal left an audit event naming its rule.
    const denials = await t.node.store.searchAudit({ decision: "deny", limit: 1000 });
    expect(denials.length).toBeGreaterThan(100);
    for (const d of denials) expect(d.event.rule, JSON.stringify(d.event)).toMatch(/^[a-z-]+[:a-z0-9/.+-]*/);
  }, 600_000);
});
