import { describe, expect, it } from "vitest";
import {
  HEADER_SIGNATURE,
  HEADER_TIME,
  RequestVerifier,
  signRequest,
} from "../../src/threshold/request-auth.js";
import { testSigner } from "./helpers.js";

const body = new TextEncoder().encode('{"a":1}');
const self = testSigner().publicKey;

describe("signed share-node requests", () => {
  it("accepts an allowed, fresh, correctly signed request once", () => {
    const signer = testSigner();
    const v = new RequestVerifier(self, [signer.publicKey]);
    const h = signRequest(signer, "POST", "/v1/threshold/partial", self, body);
    expect(v.verify("POST", "/v1/threshold/partial", (n) => h[n], body)).toMatchObject({ ok: true });
    expect(v.verify("POST", "/v1/threshold/partial", (n) => h[n], body)).toEqual({
      ok: false,
      reason: "replayed",
    });
  });

  it("refuses unknown nodes, other paths, bodies or share nodes, stale times and missing headers", () => {
    const signer = testSigner();
    const v = new RequestVerifier(self, [signer.publicKey]);
    const h = signRequest(signer, "POST", "/p", self, body);
    expect(
      new RequestVerifier(self, [testSigner().publicKey]).verify("POST", "/p", (n) => h[n], body),
    ).toEqual({ ok: false, reason: "unknown_node" });
    expect(v.verify("POST", "/q", (n) => h[n], body)).toEqual({ ok: false, reason: "bad_signature" });
    expect(v.verify("POST", "/p", (n) => h[n], new Uint8Array(1))).toEqual({
      ok: false,
      reason: "bad_signature",
    });
    const elsewhere = signRequest(signer, "POST", "/p", testSigner().publicKey, body);
    expect(v.verify("POST", "/p", (n) => elsewhere[n], body)).toEqual({ ok: false, reason: "bad_signature" });
    const old = signRequest(signer, "POST", "/p", self, body, Date.now() - 120_000);
    expect(v.verify("POST", "/p", (n) => old[n], body)).toEqual({ ok: false, reason: "stale" });
    expect(v.verify("POST", "/p", (n) => (n === HEADER_SIGNATURE ? undefined : h[n]), body)).toEqual({
      ok: false,
      reason: "missing",
    });
    expect(v.verify("POST", "/p", (n) => (n === HEADER_TIME ? "1e3" : h[n]), body)).toEqual({
      ok: false,
      reason: "malformed",
    });
  });

  it("binds the blinded point: a partial request whose point R' is swapped (say for the ciphertext's R) is refused", () => {
    const signer = testSigner();
    const v = new RequestVerifier(self, [signer.publicKey]);
    const request = (point: string) =>
      new TextEncoder().encode(
        JSON.stringify({ format: "custos-partial-request/v2", shareId: "00".repeat(16), epoch: 1, point }),
      );
    const h = signRequest(signer, "POST", "/v1/threshold/partial", self, request("B".repeat(43)));
    expect(v.verify("POST", "/v1/threshold/partial", (n) => h[n], request("C".repeat(43)))).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });
});
