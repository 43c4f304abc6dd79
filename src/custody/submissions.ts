/**
 * One custodian's submission to the current unseal ceremony, from the wire to
 * the ceremony's accepted shares: the flat `custos-unseal/v3` (checked by
 * flat-unseal.ts) or the tree's `custos-unseal/v4` (tree-unseal.ts), each
 * sealed for an unseal and refused (`wrong_kind`) if sealed for anything else,
 * each
 * refusal audited and thrown naming the custodian — and, in a tree, the
 * leaf's path — and each acceptance audited before it counts. The seal's
 * state machine (seal.ts) calls this under its lock and then completes the
 * unseal or re-arms the ceremony's idle timer.
 */
import type { Auditor } from "../audit/auditor.js";
import type { Secret } from "../crypto/secret.js";
import type { SealConfig } from "../store/store.js";
import type { Ceremony } from "./ceremony.js";
import type { UnsealSubmission } from "./flat-submission.js";
import { checkFlatSubmission } from "./flat-unseal.js";
import { type ShareRefusal, ShareRefusedError } from "./refusal.js";
import { TREE_UNSEAL_FORMAT, type TreeUnsealSubmission } from "./tree-share-format.js";
import { checkTreeSubmission, treeSatisfied } from "./tree-unseal.js";

/** Checks and records one submission; true when the accepted shares now suffice to unseal. */
export async function acceptSubmission(
  auditor: Auditor,
  config: SealConfig,
  ceremony: Ceremony,
  sub: UnsealSubmission | TreeUnsealSubmission,
  requestId?: string,
): Promise<boolean> {
  const refuse = async (
    reason: ShareRefusal,
    custodian: string,
    path?: string,
    why?: string,
  ): Promise<never> => {
    await auditor.record(
      auditor.event({
        principal: `custodian:${custodian}`,
        operation: "sys.unseal.submit",
        decision: "deny",
        reason: `${reason}${path === undefined ? "" : ` (${path})`}${why ? `: ${why}` : ""}`,
        custodian,
        requestId,
      }),
    );
    throw new ShareRefusedError(custodian, reason, path, why);
  };
  const accept = async (key: string, custodian: string, share: Secret, reason: string): Promise<void> => {
    ceremony.accepted.set(key, share);
    try {
      await auditor.record(
        auditor.event({
          principal: `custodian:${custodian}`,
          operation: "sys.unseal.submit",
          decision: "allow",
          reason,
          custodian,
          requestId,
        }),
      );
    } catch (err) {
      // A step whose audit record cannot be written does not count.
      ceremony.accepted.delete(key);
      share.dispose();
      throw err;
    }
  };

  if (sub.format === TREE_UNSEAL_FORMAT) {
    if (!config.tree) return refuse("wrong_format", sub.path, sub.path);
    const checked = await checkTreeSubmission(config, config.tree, ceremony, sub);
    if (!checked.ok) return refuse(checked.reason, checked.custodian, checked.path, checked.why);
    await accept(checked.path, checked.custodian, checked.value, `share at ${checked.path} accepted`);
    return treeSatisfied(config.tree, ceremony.accepted.keys());
  }
  if (config.tree) return refuse("wrong_format", sub.custodian);
  const checked = await checkFlatSubmission(config, ceremony, sub);
  if (!checked.ok) return refuse(checked.reason, sub.custodian, undefined, checked.why);
  const n = ceremony.accepted.size + 1;
  await accept(sub.custodian, sub.custodian, checked.share, `share ${n} of ${config.threshold} accepted`);
  return ceremony.accepted.size >= config.threshold;
}
