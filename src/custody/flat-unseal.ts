/**
 * The flat k-of-N half of an unseal ceremony: checks one custodian's
 * `custos-unseal/v1` submission in the order docs/FORMATS.md §5.3 gives
 * (ceremony, custodian, duplicate, decryption, init id, commitment) and
 * answers with the share or the refusal code; it never throws for a bad share.
 */
import { b64u, hex } from "../crypto/bytes.js";
import type { Secret } from "../crypto/secret.js";
import { verifyShareCommitment } from "../crypto/shamir.js";
import type { SealConfig } from "../store/store.js";
import type { ShareRefusal } from "./refusal.js";
import { openUnsealSubmission, type SharePayload, type UnsealSubmission } from "./share-format.js";
import type { UnsealCeremony } from "./unseal-ceremony.js";

export type FlatCheck = { ok: true; share: Secret } | { ok: false; reason: ShareRefusal };

export async function checkFlatSubmission(
  config: SealConfig,
  ceremony: UnsealCeremony,
  sub: UnsealSubmission,
): Promise<FlatCheck> {
  const custodian = sub.custodian;
  const refuse = (reason: ShareRefusal): FlatCheck => ({ ok: false, reason });
  if (sub.nonce !== hex.encode(ceremony.nonce)) return refuse("wrong_ceremony");
  const record = config.custodians.find((c) => c.id === custodian);
  if (record === undefined) return refuse("unknown_custodian");
  if (ceremony.accepted.has(custodian)) return refuse("duplicate_custodian");
  let payload: SharePayload;
  try {
    payload = await openUnsealSubmission(sub, ceremony.privateKey, ceremony.nonce);
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
