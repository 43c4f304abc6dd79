/**
 * The kinds of ceremony a custodian's share can be sent to (docs/FORMATS.md
 * §5.4): an unseal, and the two phases of each custody change — the quorum of
 * current shares and the confirmation of new ones — for a rekey and for a
 * root rotation. Every ceremony names its kind in what the node signs and in
 * the HPKE `info` a submission is sealed with, so a share a custodian meant
 * for one kind counts toward no other: before kinds existed, a rekey was
 * signed and sealed to exactly as an unseal, and an impostor at CUSTOS_ADDR
 * could relay a routine `custos operator unseal` into a rekey to a tree of
 * its own keys. Each kind also fixes the length of the binding the node signs
 * with it (the new tree's digest, the new init id), so the signed message is
 * unambiguous. Also here: the refusal of the submission formats from before
 * kinds, which the node no longer accepts from anyone.
 */
import { z } from "zod";
import { CustosError } from "../errors.js";

export const CEREMONY_KINDS = [
  "unseal",
  "rekey",
  "rekey-confirm",
  "rotate-root",
  "rotate-root-confirm",
] as const;
export type CeremonyKind = (typeof CEREMONY_KINDS)[number];
export const CeremonyKindSchema = z.enum(CEREMONY_KINDS);

/** A custody change's kind (custody-change.ts): the kind of its quorum. */
export type ChangeKind = "rekey" | "rotate-root";

const DESCRIPTION: Record<CeremonyKind, string> = {
  unseal: "an unseal ceremony",
  rekey: "a rekey",
  "rekey-confirm": "a rekey's confirmation of new shares",
  "rotate-root": "a root rotation",
  "rotate-root-confirm": "a root rotation's confirmation of new shares",
};

/** "an unseal ceremony", "a rekey", … for messages to people. */
export function describeKind(kind: CeremonyKind): string {
  return DESCRIPTION[kind];
}

/** The kind of a change's second phase, when the new shares are sent back. */
export function confirmKindOf(kind: ChangeKind): CeremonyKind {
  return kind === "rekey" ? "rekey-confirm" : "rotate-root-confirm";
}

/** Bytes the node signs after the ceremony key (§5.4): none, the tree digest, or the digest and the new init id. */
export function bindingLength(kind: CeremonyKind): number {
  if (kind === "unseal") return 0;
  return kind.endsWith("-confirm") ? 32 + 16 : 32;
}

/** The refusal's text for a share sealed for `sealedFor`, sent to a ceremony of kind `wanted`. */
export function kindMismatchText(sealedFor: CeremonyKind, wanted: CeremonyKind): string {
  return `this share was sealed for ${describeKind(sealedFor)}, not ${describeKind(wanted)}`;
}

/** Submission formats from before ceremony kinds (docs/FORMATS.md §5.3). */
export const LEGACY_SUBMISSION_FORMATS = ["custos-unseal/v1", "custos-unseal/v2"] as const;
/** Recognises an old submission just enough to refuse it by name (the routes' schemas accept it for that). */
export const LegacySubmissionSchema = z.object({ format: z.enum(LEGACY_SUBMISSION_FORMATS) });
export type LegacySubmission = z.infer<typeof LegacySubmissionSchema>;

/** Throws 400 `unsupported_format` for a submission from before ceremony kinds; narrows the rest. */
export function refuseLegacySubmission<T extends { format: string }>(
  sub: T,
): asserts sub is Exclude<T, LegacySubmission> {
  const format = sub.format;
  if ((LEGACY_SUBMISSION_FORMATS as readonly string[]).includes(format)) {
    throw new CustosError(
      400,
      "unsupported_format",
      `${format} submissions are no longer accepted: they do not say which ceremony they were sealed for ` +
        "(docs/FORMATS.md §5.3); upgrade the custos CLI to one that sends custos-unseal/v3 (flat) or v4 (tree)",
      { format },
    );
  }
}
