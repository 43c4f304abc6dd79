/**
 * Why an unseal submission was refused. The codes are stable (docs/FORMATS.md
 * §5.3) and every refusal names the custodian, so a ceremony can go on with
 * the others while the one named sorts out their share.
 */
import { CustosError } from "../errors.js";

/** Why a share was refused; the codes are stable and documented in docs/FORMATS.md §5.3. */
export type ShareRefusal =
  | "wrong_ceremony"
  | "unknown_custodian"
  | "duplicate_custodian"
  | "undecryptable"
  | "wrong_init"
  | "commitment_mismatch"
  | "key_check_failed"
  | "unknown_path"
  | "wrong_format"
  | "wrong_kind";

const REFUSAL_TEXT: Record<ShareRefusal, string> = {
  wrong_ceremony:
    "it was prepared for another unseal ceremony (stale or replayed); fetch the status and retry",
  unknown_custodian: "this custodian is not part of the seal configuration",
  duplicate_custodian: "this custodian has already submitted a share in this ceremony",
  undecryptable: "it does not open with this ceremony's key (tampered or made for another ceremony)",
  wrong_init: "it belongs to another initialisation of custos, not the one this node holds",
  commitment_mismatch: "it does not match its commitment (corrupted or altered share)",
  key_check_failed: "the reconstructed key failed its key check value; the ceremony was reset",
  unknown_path: "no custodian leaf of this node's custody tree has this path",
  wrong_format:
    "its format does not match this node's custody (custos-share/v1 for a flat k-of-N, custos-share/v2 for a custody tree)",
  wrong_kind: "it was sealed for another kind of ceremony",
};

const CONFLICTS: ReadonlySet<ShareRefusal> = new Set([
  "duplicate_custodian",
  "wrong_ceremony",
  "wrong_init",
  "wrong_kind",
]);

/**
 * Refuses a share, naming the custodian and, in a custody tree, the leaf's
 * path; `why` replaces the reason's standard text where there is more to say
 * (a `wrong_kind` says what the share was sealed for and what this is).
 */
export class ShareRefusedError extends CustosError {
  constructor(
    readonly custodian: string,
    readonly reason: ShareRefusal,
    readonly path?: string,
    why?: string,
  ) {
    const text = why ?? REFUSAL_TEXT[reason];
    super(
      CONFLICTS.has(reason) ? 409 : 400,
      "share_refused",
      path === undefined
        ? `share of custodian '${custodian}' refused: ${text}`
        : `share at ${path} refused: ${text}`,
      path === undefined ? { custodian, reason } : { custodian, reason, path },
    );
  }
}
