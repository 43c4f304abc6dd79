/**
 * The new-tree digest of a custody change (docs/FORMATS.md §5.9):
 * H("custos/tree-digest/v1" ‖ JCS(tree)). The known answer was computed
 * independently (Python: hashlib.sha256 over the label and
 * json.dumps(tree, sort_keys=True, separators=(",", ":"))), so anyone can
 * recompute a digest from the JSON `GET /v1/sys/rekey` publishes; the digest
 * does not depend on key order and changes with any member, threshold or key.
 */
import { describe, expect, it } from "vitest";
import { hex } from "../../src/crypto/bytes.js";
import type { TreeInput } from "../../src/custody/tree.js";
import { canonicalJson, treeDigest } from "../../src/custody/tree-digest.js";

const tree: TreeInput = {
  threshold: 2,
  name: "hospitals",
  of: [
    { custodian: "alice", publicKey: "A".repeat(43) },
    { threshold: 1, of: [{ repository: "pg-a" }, { tpm: "node-a", pcrs: [7, 0] }] },
  ],
};

describe("tree digest", () => {
  it("matches the independently computed known answer", () => {
    expect(canonicalJson(tree)).toBe(
      '{"name":"hospitals","of":[{"custodian":"alice","publicKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},' +
        '{"of":[{"repository":"pg-a"},{"pcrs":[7,0],"tpm":"node-a"}],"threshold":1}],"threshold":2}',
    );
    expect(hex.encode(treeDigest(tree))).toBe(
      "9ac361f37ddb6dc9510f03828385f0e781b81990a7012d5f1ed082dc7d0cf53e",
    );
  });

  it("ignores key order and absent members; changes with a threshold, a member or a key", () => {
    const reordered = JSON.parse(
      '{"of":[{"publicKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","custodian":"alice"},' +
        '{"of":[{"repository":"pg-a"},{"tpm":"node-a","pcrs":[7,0]}],"threshold":1}],"name":"hospitals","threshold":2}',
    ) as TreeInput;
    expect(treeDigest(reordered)).toEqual(treeDigest(tree));
    expect(treeDigest({ ...tree, name: undefined })).toEqual(treeDigest({ threshold: 2, of: tree.of }));
    const digests = [
      tree,
      { ...tree, threshold: 1 },
      { ...tree, of: [{ custodian: "mallory", publicKey: "A".repeat(43) }, tree.of[1]!] },
      { ...tree, of: [{ custodian: "alice", publicKey: "B".repeat(43) }, tree.of[1]!] },
      { ...tree, of: [tree.of[0]!] },
    ].map((t) => hex.encode(treeDigest(t as TreeInput)));
    expect(new Set(digests).size).toBe(digests.length);
  });
});
