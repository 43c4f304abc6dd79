/**
 * JwtVerifier on its own: the three accepted algorithms (RS256, ES256,
 * EdDSA) from a JWKS file and from a JWKS URL (a loopback server), HS256
 * and `alg: none` refused, `exp` required, the skew allowed on `exp`, and
 * every option checked at start with a message naming the flag.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isJwtShaped, JwtVerifier } from "../../src/api/jwt.js";

const ISS = "https://idp.example";
const AUD = "custos";
type Key = Awaited<ReturnType<typeof generateKeyPair>>;

describe("JWT verification", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-jwt-"));
  const keys: Record<string, Key> = {};
  let jwks = "";
  let server: Server;
  let url = "";

  const sign = (alg: string, claims: Record<string, unknown> = {}, exp: string | null = "5m") => {
    const jwt = new SignJWT({ sub: "dr-sso-1", ...claims })
      .setProtectedHeader({ alg, kid: alg })
      .setIssuer(ISS)
      .setAudience(AUD);
    if (exp !== null) jwt.setExpirationTime(exp);
    return jwt.sign(keys[alg]!.privateKey);
  };

  beforeAll(async () => {
    for (const alg of ["RS256", "ES256", "EdDSA"])
      keys[alg] = await generateKeyPair(alg, { extractable: true });
    const set = {
      keys: await Promise.all(
        Object.entries(keys).map(async ([alg, k]) => ({ ...(await exportJWK(k.publicKey)), kid: alg, alg })),
      ),
    };
    jwks = join(dir, "jwks.json");
    writeFileSync(jwks, JSON.stringify(set));
    server = createServer((_, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(set));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("accepts RS256, ES256 and EdDSA from a file and from a URL", async () => {
    for (const source of [{ jwksFile: jwks }, { jwksUrl: url }]) {
      const v = JwtVerifier.fromOptions({ ...source, issuer: ISS, audience: AUD });
      for (const alg of ["RS256", "ES256", "EdDSA"]) {
        const r = await v.verify(await sign(alg, { groups: ["x"] }));
        expect(r.ok, `${alg} ${JSON.stringify(r)}`).toBe(true);
        if (r.ok) expect(r.claims).toMatchObject({ sub: "dr-sso-1", iss: ISS, groups: ["x"] });
      }
    }
  });

  it("refuses HS256, alg none, a token without exp, and allows 30 s of skew on exp", async () => {
    const v = JwtVerifier.fromOptions({ jwksFile: jwks, issuer: ISS, audience: AUD });
    const secret = new TextEncoder().encode("x".repeat(32));
    const hs = await new SignJWT({ sub: "a" })
      .setProtectedHeader({ alg: "HS256", kid: "ES256" })
      .setIssuer(ISS)
      .setAudience(AUD)
      .setExpirationTime("5m")
      .sign(secret);
    expect((await v.verify(hs)).ok).toBe(false);
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const none = `${b64({ alg: "none" })}.${b64({ iss: ISS, aud: AUD, sub: "a", exp: 2e9 })}.`;
    expect(isJwtShaped(none)).toBe(true);
    const refused = await v.verify(none);
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.reason).toMatch(/^JWT refused: ERR_/);
    expect((await v.verify(await sign("ES256", {}, null))).ok).toBe(false);
    expect((await v.verify(await sign("ES256", {}, "-10s"))).ok).toBe(true);
    expect((await v.verify(await sign("ES256", {}, "-2m"))).ok).toBe(false);
  });

  it("checks its options once, naming the flag", () => {
    const base = { issuer: ISS, audience: AUD };
    expect(() => JwtVerifier.fromOptions(base)).toThrow(/exactly one of --jwks-file and --jwks-url/);
    expect(() => JwtVerifier.fromOptions({ ...base, jwksFile: jwks, jwksUrl: url })).toThrow(/exactly one/);
    expect(() => JwtVerifier.fromOptions({ ...base, jwksFile: jwks, issuer: "" })).toThrow(/--jwt-issuer/);
    expect(() => JwtVerifier.fromOptions({ ...base, jwksFile: jwks, audience: "" })).toThrow(
      /--jwt-audience/,
    );
    expect(() => JwtVerifier.fromOptions({ ...base, jwksUrl: "http://idp.example/jwks" })).toThrow(
      /must be https/,
    );
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ keys: [] }));
    expect(() => JwtVerifier.fromOptions({ ...base, jwksFile: bad })).toThrow(/--jwks-file .*not a JWKS/);
    expect(() => JwtVerifier.fromOptions({ ...base, jwksFile: join(dir, "none.json") })).toThrow(
      /--jwks-file/,
    );
    expect(isJwtShaped("cst_abcdefghijklmnop")).toBe(false);
  });
});
