/**
 * The browser guard in isolation (src/api/browser-guard.ts): which
 * `--allowed-origin` values are accepted, and that a configured origin
 * passes while any other `Origin` — or a form body where JSON is needed —
 * is refused with a JSON error. The attack itself, over mutual TLS, is
 * test/e2e/attack-approvals.test.ts "finding 8".
 */
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { jsonOnly, originGuard, parseAllowedOrigin } from "../../src/api/browser-guard.js";
import { CustosError } from "../../src/errors.js";

function app(allowed: string[]) {
  const a = new Hono();
  a.onError((err, c) =>
    err instanceof CustosError ? c.json(err.toJSON(), err.status) : c.json({ error: "internal" }, 500),
  );
  a.use("*", originGuard(allowed));
  a.post("/vote", jsonOnly, (c) => c.json({ ok: true }));
  return a;
}

describe("browser guard", () => {
  it("accepts an origin, nothing more", () => {
    expect(parseAllowedOrigin("https://Admin.Example:8443")).toBe("https://admin.example:8443");
    expect(parseAllowedOrigin("https://admin.example/")).toBe("https://admin.example");
    for (const bad of ["admin.example", "https://admin.example/path", "https://u@admin.example", "null"]) {
      expect(() => parseAllowedOrigin(bad), bad).toThrow(RangeError);
    }
  });

  it("lets a configured origin and no origin through, refuses any other; votes need JSON", async () => {
    const a = app(["https://admin.example"]);
    const post = (headers: Record<string, string>, body?: string) =>
      a.request("/vote", { method: "POST", headers, ...(body !== undefined && { body }) });
    const json = { "content-type": "application/json" };
    expect((await post({ ...json, origin: "https://admin.example" }, "{}")).status).toBe(200);
    expect((await post(json, "{}")).status).toBe(200);
    const evil = await post({ ...json, origin: "https://evil.example" }, "{}");
    expect(evil.status).toBe(403);
    expect(await evil.json()).toMatchObject({ error: { code: "origin_not_allowed" } });
    expect((await post({ origin: "null" })).status).toBe(403);
    const form = await post({ "content-type": "application/x-www-form-urlencoded" }, "a=1");
    expect(form.status).toBe(415);
    expect(
      (await app([]).request("/vote", { method: "POST", headers: { origin: "https://admin.example" } }))
        .status,
    ).toBe(403);
  });
});
