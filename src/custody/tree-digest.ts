/**
 * The digest of a custody change's new tree (docs/FORMATS.md §5.9):
 * `H("custos/tree-digest/v1" ‖ JCS(tree))`, JCS being RFC 8785's JSON
 * canonicalization. The node signs it into the change's ceremonies (§5.4),
 * so what a custodian is shown before sending a share — who will hold shares,
 * with which keys, behind which thresholds — is what the node will split the
 * root key over; the CLI recomputes it from the tree the status publishes
 * rather than trusting a digest it is handed. JCS rather than a bespoke
 * binary encoding so that anyone can recompute it from the published JSON
 * with an off-the-shelf library; the tree holds only integers, strings,
 * arrays and objects, where JCS is JSON.stringify with sorted keys.
 */
import { createHash } from "node:crypto";
import { concatBytes } from "../crypto/bytes.js";
import type { TreeInput } from "./tree.js";

const LABEL = "custos/tree-digest/v1";

/** RFC 8785 for the values a tree holds (no floats); absent (undefined) members are left out. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      // RFC 8785 sorts by UTF-16 code units, which is what `<` compares.
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw new RangeError("a tree holds integers only");
  }
  return JSON.stringify(value);
}

export function treeDigest(tree: TreeInput): Uint8Array {
  return new Uint8Array(createHash("sha256").update(LABEL).update(canonicalJson(tree), "utf8").digest());
}

/** What a change's ceremony signs after its key (§5.4): the digest, and the new init id once confirming. */
export function changeBinding(digest: Uint8Array, newInitId?: Uint8Array): Uint8Array {
  return newInitId === undefined ? digest : concatBytes(digest, newInitId);
}
