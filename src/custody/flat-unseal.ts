/**
 * The flat k-of-N half of a ceremony (an unseal, or a change's quorum):
 * checks one custodian's `custos-unseal/v3` submission in the order
 * docs/FORMATS.md §5.3 gives (kind, ceremony, custodian, duplicate,
 * decryption, init id, commitment) and answers with the share or the refusal
 * code; it never throws for a bad share.
 */
import { b64u, hex } from "../crypto/bytes.js";
import type { Secret } from "../crypto/secret.js";
import { verifyShareCommitment } from "../crypto/shamir.js";
import type { SealConfig } from "../store/store.js";
import type { Ceremony } from "./ceremony.js";
import { kindMismatchText } from "./ceremony-kind.js";
import { openUnsealSubmission, type UnsealSubmission } from "./flat-submission.js";
import type { ShareRefusal } from "./refusal.js";
import type { SharePayload } from "./share-format.js";

export type FlatCheck = { ok: true; share: Secret } | { ok: false; reason: ShareRefusal; why?: string };

export async function checkFlatSubmission(
  config: SealConfig,
  ceremony: Ceremony,
  sub: UnsealSubmission,
): Promise<FlatCheck> {
  const custodian = sub.custodian;
  const refuse = (reason: ShareRefusal): FlatCheck => ({ ok: false, reason });
  if (sub.ceremony !== ceremony.kind) {
    return { ok: false, reason: "wrong_kind", why: kindMismatchText(sub.ceremony, ceremony.kind) };
  }
  if (sub.nonce !== hex.encode(ceremony.nonce)) return refuse("wrong_ceremony");
  const record = config.custodians.find((c) => c.id === custodian);
  if (record === undefined) return refuse("unknown_custodian");
  if (ceremony.accepted.has(custodian)) return refuse("duplicate_custodian");
  let payload: SharePayload;
  try {
    payload = await openUnsealSubmission(sub, ceremony.privateKey, ceremony.nonce, ceremony.kind);
  } catch {
    return refuse("undecryptable");
  }
  try {
    const ok =
      hex.encode(payload.initId) === config.initId &&
      payload.holder === custodian &&
      payload.index === record.index &&
      verifyShareCommitment(
        payload.initId,
        record.index,
        custodian,
        payload.share.reveal(),
        b64u.decode(record.commitment, "commitment"),
      );
    if (ok) return { ok: true, share: payload.share };
    const wrongInit = hex.encode(payload.initId) !== config.initId;
    payload.share.dispose();
    return refuse(wrongInit ? "wrong_init" : "commitment_mismatch");
  } catch (err) {
    payload.share.dispose();
    throw err;
  }
}
