import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { concatBytes, hex, randomBytes, u8, utf8 } from "../../src/crypto/bytes.js";
import { Secret } from "../../src/crypto/secret.js";
import {
  combineShares,
  commitShare,
  KeyCheckError,
  keyCheckValue,
  SHARE_BYTES,
  splitRootKey,
  verifyShareCommitment,
} from "../../src/crypto/shamir.js";

const HOLDERS = ["alice", "bob", "carol", "dave", "erin"];

/** All subsets of `items` with exactly `k` elements. */
function subsets<T>(items: T[], k: number): T[][] {
  if (k === 0) return [[]];
  if (items.length < k) return [];
  const [first, ...rest] = items as [T, ...T[]];
  return [...subsets(rest, k - 1).map((s) => [first, ...s]), ...subsets(rest, k)];
}

async function splitFixture(threshold = 3, holders = HOLDERS) {
  const rkBytes = randomBytes(32);
  const rk = Secret.of(Uint8Array.from(rkBytes));
  const initId = randomBytes(16);
  const split = await splitRootKey(rk, holders, threshold, initId);
  return { rkBytes, rk, initId, split, kcv: keyCheckValue(rk) };
}

describe("splitRootKey and combineShares, 3-of-5", () => {
  it("every subset of 3, 4 or 5 shares reconstructs the root key and passes the key check value", async () => {
    const { rkBytes, split, kcv } = await splitFixture();
    let tried = 0;
    for (const k of [3, 4, 5]) {
      for (const subset of subsets(split.shares, k)) {
        const key = await combineShares(
          subset.map((s) => s.share.reveal()),
          kcv,
        );
        expect(hex.encode(key.reveal()), subset.map((s) => s.holder).join("+")).toBe(hex.encode(rkBytes));
        tried++;
      }
    }
    expect(tried).toBe(10 + 5 + 1);
  });

  it("every subset of 2 shares combines into a wrong key, which the KCV refuses", async () => {
    const { split, kcv } = await splitFixture();
    const pairs = subsets(split.shares, 2);
    expect(pairs).toHaveLength(10);
    for (const pair of pairs) {
      await expect(
        combineShares(
          pair.map((s) => s.share.reveal()),
          kcv,
        ),
        pair.map((s) => s.holder).join("+"),
      ).rejects.toThrow(KeyCheckError);
    }
  });

  it("the order of the shares does not matter", async () => {
    const { rkBytes, split, kcv } = await splitFixture();
    const reversed = [...split.shares].reverse().map((s) => s.share.reveal());
    expect((await combineShares(reversed, kcv)).reveal()).toEqual(rkBytes);
  });

  it("shares of two different splits of the same key do not combine", async () => {
    const a = await splitFixture();
    const b = await splitRootKey(a.rk, HOLDERS, 3, a.initId);
    const mine = [a.split.shares[0]!.share.reveal(), a.split.shares[1]!.share.reveal()];
    // x-coordinates are drawn at random; take a foreign share whose x differs from both (at most 2 can clash).
    const foreign = b.shares.map((s) => s.share.reveal()).find((s) => mine.every((m) => m[32] !== s[32]))!;
    await expect(combineShares([...mine, foreign], a.kcv)).rejects.toThrow(KeyCheckError);
  });

  it("gives 33-byte shares in holder order with index = position + 1, and one commitment each", async () => {
    const { split, initId } = await splitFixture();
    expect(split.shares.map((s) => [s.index, s.holder])).toEqual(HOLDERS.map((h, i) => [i + 1, h]));
    expect(split.commitments).toHaveLength(5);
    split.shares.forEach((s, i) => {
      expect(s.share.length).toBe(SHARE_BYTES);
      expect(String(s.share)).toBe("Secret(33 bytes)");
      expect(verifyShareCommitment(initId, s.index, s.holder, s.share.reveal(), split.commitments[i]!)).toBe(
        true,
      );
    });
  });

  it("splits the largest configuration, 32-of-32", async () => {
    const holders = Array.from({ length: 32 }, (_, i) => `c${i}`);
    const { rkBytes, split, kcv } = await splitFixture(32, holders);
    expect(
      (
        await combineShares(
          split.shares.map((s) => s.share.reveal()),
          kcv,
        )
      ).reveal(),
    ).toEqual(rkBytes);
  });
});

describe("share commitments", () => {
  it("is H('custos/share-commit/v1' ‖ initId ‖ u8(i) ‖ u8(len c) ‖ c ‖ share)", () => {
    const initId = randomBytes(16);
    const share = randomBytes(33);
    const expected = sha256(
      concatBytes(utf8("custos/share-commit/v1"), initId, u8(2), u8(3), utf8("bob"), share),
    );
    expect(hex.encode(commitShare(initId, 2, "bob", share))).toBe(hex.encode(expected));
  });

  it("a corrupted share is caught by its commitment, naming the holder, before anything is combined", async () => {
    const { split, initId, kcv } = await splitFixture();
    const submitted = split.shares
      .slice(1, 4)
      .map((s) => ({ ...s, bytes: Uint8Array.from(s.share.reveal()) }));
    submitted[1]!.bytes[7]! ^= 0x01; // carol's share, one bit
    const bad = submitted
      .filter(
        (s) => !verifyShareCommitment(initId, s.index, s.holder, s.bytes, split.commitments[s.index - 1]!),
      )
      .map((s) => s.holder);
    expect(bad).toEqual(["carol"]);
    // Without the commitments, the combine would "succeed" into a wrong key; only the KCV would notice.
    await expect(
      combineShares(
        submitted.map((s) => s.bytes),
        kcv,
      ),
    ).rejects.toThrow(KeyCheckError);
  });

  it("binds the share to its init id, its index and its holder", async () => {
    const { split, initId } = await splitFixture();
    const s = split.shares[0]!;
    const c = split.commitments[0]!;
    const share = s.share.reveal();
    expect(verifyShareCommitment(initId, 1, "alice", share, c)).toBe(true);
    expect(verifyShareCommitment(randomBytes(16), 1, "alice", share, c)).toBe(false);
    expect(verifyShareCommitment(initId, 2, "alice", share, c)).toBe(false);
    expect(verifyShareCommitment(initId, 1, "bob", share, c)).toBe(false);
    expect(verifyShareCommitment(initId, 1, "alice", split.shares[1]!.share.reveal(), c)).toBe(false);
    expect(verifyShareCommitment(initId, 1, "alice", share.subarray(0, 32), c)).toBe(false);
    expect(verifyShareCommitment(initId, 1, "alice", share, c.subarray(0, 31))).toBe(false);
  });
});

describe("key check value", () => {
  it("is HMAC(RK, 'custos/kcv/v1') and differs between keys", () => {
    const rk = randomBytes(32);
    expect(keyCheckValue(Secret.of(Uint8Array.from(rk)))).toEqual(hmac(sha256, rk, utf8("custos/kcv/v1")));
    expect(hex.encode(keyCheckValue(Secret.random(32)))).not.toBe(
      hex.encode(keyCheckValue(Secret.random(32))),
    );
  });
});

describe("input checks", () => {
  const rk = () => Secret.random(32);
  const id = randomBytes(16);

  it.each([
    ["threshold 1", () => splitRootKey(rk(), HOLDERS, 1, id), /threshold/],
    ["threshold above N", () => splitRootKey(rk(), HOLDERS, 6, id), /threshold/],
    ["a single holder", () => splitRootKey(rk(), ["alice"], 2, id), /holders/],
    [
      "33 holders",
      () =>
        splitRootKey(
          rk(),
          Array.from({ length: 33 }, (_, i) => `c${i}`),
          2,
          id,
        ),
      /holders/,
    ],
    ["a repeated holder", () => splitRootKey(rk(), ["alice", "bob", "alice"], 2, id), /holders\[2\] 'alice'/],
    ["an invalid holder id", () => splitRootKey(rk(), ["alice", "Bob"], 2, id), /holders\[1\]/],
    ["a short init id", () => splitRootKey(rk(), HOLDERS, 3, new Uint8Array(15)), /initId/],
    ["a 16-byte key", () => splitRootKey(Secret.random(16), HOLDERS, 3, id), /32 bytes/],
  ])("splitRootKey refuses %s", async (_, f, message) => {
    await expect(f()).rejects.toThrow(message);
  });

  it("combineShares refuses one share, repeated x-coordinates, wrong lengths and a short KCV", async () => {
    const { split, kcv } = await splitFixture();
    const s = split.shares.map((x) => x.share.reveal());
    await expect(combineShares([s[0]!], kcv)).rejects.toThrow(RangeError);
    await expect(combineShares([s[0]!, Uint8Array.from(s[0]!)], kcv)).rejects.toThrow(
      /repeats the x-coordinate/,
    );
    await expect(combineShares([s[0]!, s[1]!.subarray(0, 32)], kcv)).rejects.toThrow(/shares\[1\]/);
    await expect(combineShares([s[0]!, s[1]!], kcv.subarray(0, 31))).rejects.toThrow(/kcv/);
  });

  it("combineShares accepts Buffers (the library itself would refuse them)", async () => {
    const { rkBytes, split, kcv } = await splitFixture();
    const buffers = split.shares.slice(0, 3).map((s) => Buffer.from(s.share.reveal()));
    expect((await combineShares(buffers, kcv)).reveal()).toEqual(rkBytes);
  });

  it("combineShares leaves the caller's share bytes untouched", async () => {
    const { split, kcv } = await splitFixture();
    const s = split.shares.slice(0, 3).map((x) => Uint8Array.from(x.share.reveal()));
    const before = s.map((x) => hex.encode(x));
    await combineShares(s, kcv);
    expect(s.map((x) => hex.encode(x))).toEqual(before);
  });
});
