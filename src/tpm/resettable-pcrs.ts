/**
 * PCRs that software can reset, and the one rule that refuses them wherever
 * custos seals to PCRs: the TPM seal (`POST /v1/sys/tpm-seal`,
 * custody/tpm-custody.ts) and a custody tree's `tpm` leaf (custody/tree.ts).
 * Under the TCG PC Client Platform TPM Profile, PCR 16 (debug) and PCR 23
 * (application support) are resettable at locality 0 with TPM2_PCR_Reset, so
 * any process on the machine can reset one and extend it back to the value a
 * seal was bound to: such a seal protects nothing. The rule lives here, in
 * the lowest layer, so the two entry points cannot drift apart again.
 * `sealToTpm` itself does not refuse them: tests use PCR 23 precisely
 * because it can be reset and extended at will.
 */

/** PC Client Platform TPM Profile: resettable at locality 0 (debug, application support). */
export const SOFTWARE_RESETTABLE_PCRS: readonly number[] = Object.freeze([16, 23]);

/** The PCRs of `pcrs` that software can reset, ascending and without repeats (empty when none). */
export function softwareResettablePcrs(pcrs: readonly number[]): number[] {
  return [...new Set(pcrs.filter((p) => SOFTWARE_RESETTABLE_PCRS.includes(p)))].sort((a, b) => a - b);
}

/** Why a PCR selection cannot protect a seal, naming the PCRs; null when it has no resettable PCR. */
export function resettablePcrProblem(pcrs: readonly number[]): string | null {
  const bad = softwareResettablePcrs(pcrs);
  if (bad.length === 0) return null;
  return `PCR ${bad.join(", ")} can be reset by software (TPM2_PCR_Reset at locality 0); a seal bound to it protects nothing`;
}
