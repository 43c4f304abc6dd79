/**
 * The checks of a custody change's two kinds of submission
 * (docs/FORMATS.md §5.9), kept apart from its state machine
 * (custody-change.ts): a current share for the quorum — the checks of §5.3
 * (flat) or §5.7 (tree), against the current custody, for a share sealed for
 * this change's kind — and a new share sent back as a confirmation, checked
 * against the pending tree: kind, nonce, custodian leaf, decryption, new init
 * id, commitment. A share sealed for another kind of ceremony (an unseal, the
 * other phase, the other kind of change) is `wrong_kind`. Neither throws for a
 * bad share; each answers with the share or the refusal, naming the leaf.
 * Also the new tree a change is started with, the root key from an accepted
 * quorum (checked against the key check value), and the audit lookup a
 * restart uses to find an unfinished change.
 */
import { b64u, constantTimeEqual, hex } from "../crypto/bytes.js";
import type { Secret } from "../crypto/secret.js";
import { combineShares } from "../crypto/shamir.js";
import { CustosError } from "../errors.js";
import type { SealConfig, Store } from "../store/store.js";
import type { Ceremony } from "./ceremony.js";
import { kindMismatchText } from "./ceremony-kind.js";
import { commitmentAt, initIdBytes } from "./change-shares.js";
import type { UnsealSubmission } from "./flat-submission.js";
import { checkFlatSubmission } from "./flat-unseal.js";
import { isNodeHeld, type NodeShares } from "./node-shares.js";
import type { ShareRefusal } from "./refusal.js";
import { checkTree, leaves, type TreeInput, TreeInputSchema } from "./tree.js";
import {
  openTreeUnsealSubmission,
  TREE_UNSEAL_FORMAT,
  type TreeUnsealSubmission,
} from "./tree-share-format.js";
import { verifyLeaf } from "./tree-split.js";
import { checkTreeSubmission, combineTree } from "./tree-unseal.js";

export type Checked =
  | { ok: true; key: string; value: Secret }
  | { ok: false; who: string; reason: ShareRefusal; why?: string };

/**
 * The new tree of a change: required for a rekey, optional for a rotation
 * (null: the current tree). Refused before any share is spent: a malformed
 * tree, or leaves this node cannot serve (a repository it has not
 * configured, a TPM it does not have).
 */
export function parseChangeTree(
  kind: "rekey" | "rotate-root",
  tree: unknown,
  nodeShares: NodeShares | null,
): TreeInput | null {
  if (tree === undefined || tree === null) {
    if (kind === "rotate-root") return null;
    throw new CustosError(
      400,
      "invalid_request",
      "a rekey needs the new tree (tree: {threshold, of: [...]})",
    );
  }
  const parsed = TreeInputSchema.safeParse(tree);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CustosError(
      400,
      "invalid_tree",
      `tree.${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`,
    );
  }
  checkTree(parsed.data);
  const held = leaves(parsed.data).filter(isNodeHeld);
  const problems =
    held.length === 0
      ? []
      : (nodeShares?.check(held) ?? [
          "this node has no repositories or TPM configured (custos server --repositories FILE, --tpm ADDRESS)",
        ]);
  if (problems.length > 0) throw new CustosError(400, "invalid_tree", problems.join("; "));
  return parsed.data;
}

/** A current share (custos-unseal/v3 or v4) against the current custody. */
export async function checkCurrentShare(
  config: SealConfig,
  ceremony: Ceremony,
  sub: UnsealSubmission | TreeUnsealSubmission,
): Promise<Checked> {
  if (sub.format === TREE_UNSEAL_FORMAT) {
    if (!config.tree) return { ok: false, who: sub.path, reason: "wrong_format" };
    const checked = await checkTreeSubmission(config, config.tree, ceremony, sub);
    return checked.ok
      ? { ok: true, key: checked.path, value: checked.value }
      : { ok: false, who: checked.path, reason: checked.reason, ...why(checked.why) };
  }
  if (config.tree) return { ok: false, who: sub.custodian, reason: "wrong_format" };
  const checked = await checkFlatSubmission(config, ceremony, sub);
  return checked.ok
    ? { ok: true, key: sub.custodian, value: checked.share }
    : { ok: false, who: sub.custodian, reason: checked.reason, ...why(checked.why) };
}

const why = (text: string | undefined) => (text === undefined ? {} : { why: text });

/** A new share sent back (custos-unseal/v4) against the pending custody; the share is wiped either way. */
export async function checkConfirmation(
  pending: SealConfig,
  ceremony: Ceremony,
  sub: TreeUnsealSubmission,
): Promise<{ ok: true } | { ok: false; reason: ShareRefusal; why?: string }> {
  if (sub.ceremony !== ceremony.kind) {
    return { ok: false, reason: "wrong_kind", why: kindMismatchText(sub.ceremony, ceremony.kind) };
  }
  if (sub.nonce !== hex.encode(ceremony.nonce)) return { ok: false, reason: "wrong_ceremony" };
  const commitment = commitmentAt(pending, sub.path);
  if (commitment === null) return { ok: false, reason: "unknown_path" };
  const newInit = initIdBytes(pending);
  let payload: Awaited<ReturnType<typeof openTreeUnsealSubmission>>;
  try {
    payload = await openTreeUnsealSubmission(sub, ceremony.privateKey, ceremony.nonce, ceremony.kind);
  } catch {
    return { ok: false, reason: "undecryptable" };
  }
  try {
    if (!constantTimeEqual(payload.initId, newInit)) return { ok: false, reason: "wrong_init" };
    if (!verifyLeaf(newInit, sub.path, payload.value.reveal(), commitment)) {
      return { ok: false, reason: "commitment_mismatch" };
    }
    return { ok: true };
  } finally {
    payload.value.dispose();
  }
}

/** The root key from the accepted quorum; KeyCheckError when it fails the key check value. */
export function combineQuorum(config: SealConfig, ceremony: Ceremony): Promise<Secret> {
  return config.tree
    ? combineTree(config, config.tree, ceremony.accepted)
    : combineShares(
        [...ceremony.accepted.values()].map((s) => s.reveal()),
        b64u.decode(config.kcv, "kcv"),
      );
}

/** The leaf paths the accepted shares stand for (flat custody: `root/custodian:<id>`). */
export function pathsOf(config: SealConfig, ceremony: Ceremony): string[] {
  const keys = [...ceremony.accepted.keys()];
  return config.tree ? keys : keys.map((id) => `root/custodian:${id}`);
}

/** The newest audit event of an operation, or null. */
export async function lastEvent(store: Store, operation: string) {
  let from = 1;
  let last = null;
  for (;;) {
    const page = await store.searchAudit({ operation, fromSeq: from, limit: 1000 });
    if (page.length === 0) return last;
    last = page[page.length - 1]?.event ?? last;
    if (page.length < 1000) return last;
    from = (last?.seq ?? from) + 1;
  }
}
