/**
 * The HTTP API in memory (`app.request()`, no socket) on a real SQLite store:
 * bad input of every kind is a 4xx JSON error and writes nothing; sealed
 * routes answer 503 `sealed`; a replayed unseal submission is refused; the
 * OpenAPI document is served.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CustosNode, openNode } from "../../src/api/server.js";
import { verifyChain } from "../../src/audit/chain.js";
import { b64u, hex } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";
import type { Secret } from "../../src/crypto/secret.js";
import { makeUnsealSubmission } from "../../src/custody/flat-submission.js";
import { openShareFile, type ShareFile } from "../../src/custody/share-format.js";

interface CallOptions {
  token?: string | null;
  raw?: string;
  type?: string;
}

interface Custodian {
  id: string;
  publicKey: Uint8Array;
  privateKey: Secret;
}

describe("HTTP API", () => {
  let dir: string;
  let node: CustosNode;
  let root: string;
  let shares: ShareFile[];
  const custodians: Custodian[] = ["ann", "ben", "cat"].map((id) => ({ id, ...generateX25519KeyPair() }));

  const call = async (method: string, path: string, body?: unknown, opts: CallOptions = {}) => {
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? root : opts.token;
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined || opts.raw !== undefined)
      headers["content-type"] = opts.type ?? "application/json";
    const payload = opts.raw ?? (body === undefined ? undefined : JSON.stringify(body));
    // Body limits need a declared Content-Length, a forbidden header for
    // fetch's Request: socket.test.ts checks them over a real socket.
    const res = await node.app.request(path, { method, headers, body: payload });
    const text = await res.text();
    return {
      status: res.status,
      body: JSON.parse(text) as Record<string, unknown> & { error?: { code: string; message: string } },
    };
  };

  const submission = async (c: Custodian, status: { nonce: string; ceremonyPublicKey: string }) => {
    const file = shares.find((s) => s.custodian === c.id)!;
    const payload = await openShareFile(file, c.privateKey);
    return makeUnsealSubmission(
      payload,
      "unseal",
      hex.decode(status.nonce, "nonce"),
      b64u.decode(status.ceremonyPublicKey, "key"),
    );
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "custos-api-"));
    node = await openNode({ dataDir: dir, log: pino({ level: "silent" }) });
    const init = await call(
      "POST",
      "/v1/sys/init",
      {
        threshold: 2,
        custodians: custodians.map((c) => ({ id: c.id, publicKey: b64u.encode(c.publicKey) })),
      },
      { token: null },
    );
    expect(init.status).toBe(200);
    root = init.body.rootToken as string;
    shares = init.body.shares as ShareFile[];
    expect((await call("POST", "/v1/keys", { name: "notes" })).status).toBe(201);
  });

  afterAll(async () => {
    await node?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const use = { purpose: "TREAT", context: { patient: "p1" } };
  const cases: [string, string, string, unknown, CallOptions, number, string][] = [
    [
      "malformed JSON",
      "POST",
      "/v1/keys/notes/datakey",
      undefined,
      { raw: '{"purpose":' },
      400,
      "invalid_json",
    ],
    [
      "not JSON at all",
      "POST",
      "/v1/keys",
      undefined,
      { raw: "name=x", type: "application/x-www-form-urlencoded" },
      415,
      "unsupported_media_type",
    ],
    ["wrong type", "POST", "/v1/keys", { name: 42 }, {}, 400, "invalid_request"],
    ["bad key name", "POST", "/v1/keys", { name: "Bad Name" }, {}, 400, "invalid_request"],
    ["reserved key name", "POST", "/v1/keys", { name: "_root" }, {}, 400, "invalid_request"],
    ["unknown field", "POST", "/v1/keys/notes/datakey", { ...use, extra: 1 }, {}, 400, "invalid_request"],
    [
      "unknown purpose",
      "POST",
      "/v1/keys/notes/datakey",
      { ...use, purpose: "SNOOP" },
      {},
      400,
      "invalid_request",
    ],
    ["missing purpose", "POST", "/v1/keys/notes/datakey", { context: {} }, {}, 400, "invalid_request"],
    [
      "bad base64",
      "POST",
      "/v1/keys/notes/encrypt",
      { ...use, plaintext: "not base64!" },
      {},
      400,
      "invalid_request",
    ],
    [
      "oversize payload",
      "POST",
      "/v1/keys/notes/encrypt",
      { ...use, plaintext: Buffer.alloc(4097).toString("base64") },
      {},
      400,
      "payload_too_large",
    ],
    [
      "huge context map",
      "POST",
      "/v1/keys/notes/datakey",
      { ...use, context: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, "v"])) },
      {},
      400,
      "invalid_request",
    ],
    [
      "context value too long",
      "POST",
      "/v1/keys/notes/datakey",
      { ...use, context: { a: "x".repeat(300) } },
      {},
      400,
      "invalid_request",
    ],
    [
      "context value not a string",
      "POST",
      "/v1/keys/notes/datakey",
      { ...use, context: { a: 1 } },
      {},
      400,
      "invalid_request",
    ],
    [
      "__proto__ context key (it would be dropped, unbinding the entry)",
      "POST",
      "/v1/keys/notes/datakey",
      undefined,
      { raw: '{"purpose":"TREAT","context":{"__proto__":"MRN-1"}}' },
      400,
      "invalid_request",
    ],
    [
      "lone surrogate in a context value",
      "POST",
      "/v1/keys/notes/datakey",
      { purpose: "TREAT", context: { patient: "\ud800" } },
      {},
      400,
      "invalid_request",
    ],
    [
      "garbage ciphertext",
      "POST",
      "/v1/keys/notes/decrypt",
      { ...use, ciphertext: "custos:v1:AAAA" },
      {},
      400,
      "decryption_failed",
    ],
    [
      "ciphertext of another format",
      "POST",
      "/v1/keys/notes/decrypt",
      { ...use, ciphertext: "vault:v1:abc" },
      {},
      400,
      "invalid_request",
    ],
    ["unknown key", "POST", "/v1/keys/nope/datakey", use, {}, 404, "key_not_found"],
    ["missing token", "POST", "/v1/keys/notes/datakey", use, { token: null }, 401, "unauthenticated"],
    [
      "bad token",
      "POST",
      "/v1/keys/notes/datakey",
      use,
      { token: "cst_nottherighttokenatallnottherighttokenatal" },
      401,
      "unauthenticated",
    ],
    [
      // An initialised node refuses init before reading the body (finding 14).
      "bad init threshold on an initialised node",
      "POST",
      "/v1/sys/init",
      { threshold: 1, custodians: [] },
      {},
      409,
      "already_initialized",
    ],
    [
      "second init",
      "POST",
      "/v1/sys/init",
      {
        threshold: 2,
        custodians: custodians.map((c) => ({ id: c.id, publicKey: b64u.encode(c.publicKey) })),
      },
      {},
      409,
      "already_initialized",
    ],
    [
      "minDecryptionVersion past latest",
      "PATCH",
      "/v1/keys/notes",
      { minDecryptionVersion: 5 },
      {},
      400,
      "invalid_request",
    ],
    ["empty patch", "PATCH", "/v1/keys/notes", {}, {}, 400, "invalid_request"],
    [
      "token with root role",
      "POST",
      "/v1/tokens",
      { principal: "x", roles: ["root"] },
      {},
      400,
      "invalid_request",
    ],
    ["unknown route", "GET", "/v1/nothing", undefined, {}, 404, "not_found"],
    ["audit limit too large", "GET", "/v1/audit/events?limit=100000", undefined, {}, 400, "invalid_request"],
  ];

  it.each(cases)("%s (%s %s)", async (_name, method, path, body, opts, status, code) => {
    const before = await node.store.listKeys();
    const res = await call(method, path, body, opts);
    expect(res.status).toBe(status);
    expect(res.body.error?.code).toBe(code);
    expect(res.body.error?.message.length).toBeGreaterThan(5);
    expect(await node.store.listKeys()).toEqual(before);
  });

  it("names the offending field in validation errors", async () => {
    const res = await call("POST", "/v1/keys/notes/datakey", { ...use, purpose: "SNOOP", extra: 1 });
    expect(res.body.error?.message).toContain("purpose");
    expect(res.body.error?.message).toContain("extra");
  });

  it("refuses a service token for administration and an admin token for key use", async () => {
    const svc = (await call("POST", "/v1/tokens", { principal: "svc", roles: ["service"] })).body
      .token as string;
    const adm = (await call("POST", "/v1/tokens", { principal: "adm", roles: ["admin"] })).body
      .token as string;
    expect((await call("POST", "/v1/keys/notes/rotate", {}, { token: svc })).status).toBe(403);
    expect((await call("POST", "/v1/keys/notes/datakey", use, { token: adm })).status).toBe(403);
    expect((await call("POST", "/v1/keys/notes/datakey", use, { token: svc })).status).toBe(200);
    expect(
      (await call("POST", "/v1/tokens", { principal: "y", roles: ["admin"] }, { token: adm })).status,
    ).toBe(403);
  });

  it("encrypts and decrypts a payload; a disabled key refuses with the same opaque error", async () => {
    const pt = Buffer.from("allergy: penicillin").toString("base64");
    const enc = await call("POST", "/v1/keys/notes/encrypt", { ...use, plaintext: pt });
    expect(enc.status).toBe(200);
    const ct = enc.body.ciphertext as string;
    expect(ct).toMatch(/^custos:v1:/);
    const dec = await call("POST", "/v1/keys/notes/decrypt", { ...use, ciphertext: ct });
    expect(dec.body.plaintext).toBe(pt);
    const tampered = `${ct.slice(0, -2)}${ct.endsWith("A") ? "B" : "A"}${ct.slice(-1)}`;
    const t = await call("POST", "/v1/keys/notes/decrypt", { ...use, ciphertext: tampered });
    const w = await call("POST", "/v1/keys/notes/decrypt", {
      ...use,
      context: { patient: "p2" },
      ciphertext: ct,
    });
    expect((await call("PATCH", "/v1/keys/notes", { enabled: false })).status).toBe(200);
    const d = await call("POST", "/v1/keys/notes/decrypt", { ...use, ciphertext: ct });
    expect((await call("PATCH", "/v1/keys/notes", { enabled: true })).status).toBe(200);
    for (const r of [t, w, d]) expect(r).toEqual({ status: 400, body: t.body });
    expect(t.body.error?.code).toBe("decryption_failed");
  });

  it("schedules and cancels destruction", async () => {
    expect((await call("POST", "/v1/keys", { name: "tmp" })).status).toBe(201);
    const del = await call("DELETE", "/v1/keys/tmp");
    expect(del.status).toBe(202);
    expect(del.body.state).toBe("pending-destruction");
    expect((await call("POST", "/v1/keys/tmp/datakey", use)).status).toBe(409);
    const cancel = await call("POST", "/v1/keys/tmp/cancel-destruction", {});
    expect(cancel.body.state).toBe("disabled");
  });

  it("serves the OpenAPI document", async () => {
    const res = await node.app.request("/v1/openapi.json");
    const doc = (await res.json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/v1/keys/{name}/datakey", "/v1/sys/unseal"]),
    );
  });

  it("when sealed: key routes answer 503 sealed; a replayed submission is refused; unseal works", async () => {
    expect((await call("POST", "/v1/sys/seal", {})).status).toBe(200);
    const dk = await call("POST", "/v1/keys/notes/datakey", use);
    expect(dk).toMatchObject({ status: 503, body: { error: { code: "sealed" } } });
    expect((await call("GET", "/v1/keys")).status).toBe(503);

    const s1 = (await call("GET", "/v1/sys/seal-status", undefined, { token: null })).body as {
      nonce: string;
      ceremonyPublicKey: string;
    };
    const captured = await submission(custodians[0]!, s1);
    expect((await call("POST", "/v1/sys/unseal", captured, { token: null })).body.progress).toBe(1);
    const anonymousReset = await call("POST", "/v1/sys/unseal/reset", {}, { token: null });
    expect(anonymousReset.status).toBe(401);
    expect((await call("GET", "/v1/sys/seal-status", undefined, { token: null })).body.progress).toBe(1);
    expect((await call("POST", "/v1/sys/unseal/reset", {})).body.progress).toBe(0);
    const replay = await call("POST", "/v1/sys/unseal", captured, { token: null });
    expect(replay.status).toBe(409);
    expect(replay.body.error).toMatchObject({
      code: "share_refused",
      custodian: "ann",
      reason: "wrong_ceremony",
    });

    // A share of another initialisation (same custodian, other init id) is refused by the server too.
    const sNow = (await call("GET", "/v1/sys/seal-status", undefined, { token: null })).body as {
      nonce: string;
      ceremonyPublicKey: string;
    };
    const annPayload = await openShareFile(
      shares.find((f) => f.custodian === "ann")!,
      custodians[0]!.privateKey,
    );
    const foreign = await makeUnsealSubmission(
      { ...annPayload, initId: new Uint8Array(16).fill(7) },
      "unseal",
      hex.decode(sNow.nonce, "nonce"),
      b64u.decode(sNow.ceremonyPublicKey, "key"),
    );
    const wrongInit = await call("POST", "/v1/sys/unseal", foreign, { token: null });
    expect(wrongInit.status).toBe(409);
    expect(wrongInit.body.error).toMatchObject({ custodian: "ann", reason: "wrong_init" });

    const s2 = (await call("GET", "/v1/sys/seal-status", undefined, { token: null })).body as {
      nonce: string;
      ceremonyPublicKey: string;
    };
    // The captured ciphertext relabelled with the new nonce still does not open under the new ceremony key.
    const relabelled = await call(
      "POST",
      "/v1/sys/unseal",
      { ...captured, nonce: s2.nonce },
      { token: null },
    );
    expect(relabelled.body.error).toMatchObject({ custodian: "ann", reason: "undecryptable" });
    for (const c of [custodians[1]!, custodians[2]!]) {
      expect((await call("POST", "/v1/sys/unseal", await submission(c, s2), { token: null })).status).toBe(
        200,
      );
    }
    expect((await call("POST", "/v1/keys/notes/datakey", use)).status).toBe(200);
  });

  it("audits every read even when two requests carry the same client request id", async () => {
    const before = (await node.store.readAudit({ fromSeq: 1, limit: 1000 })).length;
    const headers = {
      authorization: `Bearer ${root}`,
      "content-type": "application/json",
      "x-request-id": "same",
    };
    await Promise.all([
      node.app.request("/v1/keys/notes/datakey", { method: "POST", headers, body: JSON.stringify(use) }),
      node.app.request("/v1/keys/notes", { headers }),
    ]);
    const added = (await node.store.readAudit({ fromSeq: before + 1, limit: 1000 })).map(
      (e) => e.event.operation,
    );
    expect(added).toEqual(expect.arrayContaining(["keys.datakey", "http:GET /v1/keys/:name"]));
  });

  it("audits requests refused before any operation ran (bad input, unknown route, oversize body)", async () => {
    for (const [method, path, body, raw] of [
      ["POST", "/v1/keys/notes/datakey", { purpose: "SNOOP" }, undefined],
      ["GET", "/v1/nothing", undefined, undefined],
      ["POST", "/v1/keys", undefined, "x".repeat(70_000)],
    ] as const) {
      const res = await node.app.request(path, {
        method,
        headers: {
          authorization: `Bearer ${root}`,
          "content-type": "application/json",
          "x-request-id": "chosen-by-the-client",
        },
        body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
      });
      expect(res.status).toBeGreaterThanOrEqual(400);
      const id = res.headers.get("x-request-id");
      expect(id).not.toBe("chosen-by-the-client");
      const events = await node.store.readAudit({ fromSeq: 1, limit: 1000 });
      const mine = events.filter((e) => e.event.requestId === id);
      expect(mine).toHaveLength(1);
      expect(mine[0]?.event.decision).toBe("deny");
      expect(mine[0]?.event.reason).toMatch(/^4\d\d /);
    }
  });

  it("keeps an intact audit chain throughout", async () => {
    const events = await node.store.readAudit({ fromSeq: 1, limit: 1000 });
    expect(events.length).toBeGreaterThan(30);
    expect(verifyChain(events).ok).toBe(true);
    const text = JSON.stringify(events);
    expect(text).not.toContain("allergy");
    expect(text).not.toContain('"p1"');
  });
});
