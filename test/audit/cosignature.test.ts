/**
 * The countersignature format (docs/FORMATS.md §8.3, "custos/cosign/v1"):
 * JSON round trip, every signed field bound (changing any one fails
 * verification), domain separation from the node's own head signature, and
 * strict parsing that names the bad field.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import {
  type Cosignature,
  cosign,
  cosignatureFromJson,
  cosignatureToJson,
  verifyCosignature,
} from "../../src/audit/cosignature.js";
import { signTreeHead } from "../../src/audit/tree-head.js";
import { randomBytes } from "../../src/crypto/bytes.js";
import { Secret } from "../../src/crypto/secret.js";
import { FormatError } from "../../src/custody/format-error.js";

const witnessKey = Secret.of(ed25519.utils.randomSecretKey());
const logKey = ed25519.getPublicKey(ed25519.utils.randomSecretKey());
const fields = {
  log: logKey,
  size: 42,
  root: randomBytes(32),
  timestamp: 1_764_000_000_000,
  cosignedAt: 1_764_000_000_500,
};
const good = cosign(witnessKey, "weill-mirror", fields);

const flip = (b: Uint8Array, i = 0) => {
  const c = Uint8Array.from(b);
  c[i]! ^= 1;
  return c;
};

describe("custos/cosign/v1 countersignatures", () => {
  it("verifies and survives a JSON round trip unchanged", () => {
    expect(verifyCosignature(good)).toBe(true);
    const json = JSON.parse(JSON.stringify(cosignatureToJson(good)));
    const back = cosignatureFromJson(json);
    expect(back).toEqual(good);
    expect(verifyCosignature(back)).toBe(true);
    expect(cosignatureToJson(back)).toEqual(json);
  });

  const tampered: [string, Partial<Cosignature>][] = [
    ["log", { log: flip(good.log) }],
    ["size", { size: 43 }],
    ["root", { root: flip(good.root, 31) }],
    ["timestamp", { timestamp: good.timestamp + 1 }],
    ["cosignedAt", { cosignedAt: good.cosignedAt - 1 }],
    ["witnessKey", { witnessKey: ed25519.getPublicKey(ed25519.utils.randomSecretKey()) }],
    ["signature", { signature: flip(good.signature, 5) }],
  ];
  it.each(tampered)("refuses a countersignature whose %s was changed", (_, change) => {
    expect(verifyCosignature({ ...good, ...change })).toBe(false);
  });

  it("does not sign the witness's display name (the identity is the key)", () => {
    expect(verifyCosignature({ ...good, witness: "someone-else" })).toBe(true);
  });

  it("is domain-separated from the node's head signature under the same key", () => {
    const sth = signTreeHead(witnessKey, fields.size, fields.timestamp, fields.root);
    expect(verifyCosignature({ ...good, signature: sth.signature })).toBe(false);
  });

  it("refuses malformed JSON and names the field", () => {
    const json = cosignatureToJson(good);
    const bad: [string, Record<string, unknown>][] = [
      ["cosignature.extra", { ...json, extra: 1 }],
      ["cosignature.rootHash", { ...json, rootHash: json.rootHash.toUpperCase() }],
      ["cosignature.rootHash", { ...json, rootHash: json.rootHash.slice(2) }],
      ["cosignature.signature", { ...json, signature: `${json.signature}==` }],
      ["cosignature.log", { ...json, log: json.log.slice(1) }],
      ["cosignature.size", { ...json, size: 0 }],
      ["cosignature.size", { ...json, size: "42" }],
      ["cosignature.timestamp", { ...json, timestamp: -1 }],
      ["cosignature.witness", { ...json, witness: "Not A Name" }],
    ];
    for (const [field, value] of bad) {
      let err: unknown;
      try {
        cosignatureFromJson(value);
      } catch (e) {
        err = e;
      }
      expect(err, field).toBeInstanceOf(FormatError);
      expect((err as FormatError).field).toBe(field);
    }
    expect(() => cosignatureFromJson(null)).toThrow(FormatError);
  });
});
