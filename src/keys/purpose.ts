/**
 * Purposes of use: the closed list of HL7 v3 PurposeOfUse codes
 * (code system 2.16.840.1.113883.1.11.20448, terminology.hl7.org
 * ValueSet v3-PurposeOfUse). Every key operation names one, and the audit
 * records it; a code not on this list is refused rather than stored, so
 * reports can rely on the vocabulary. The list is data, not policy: which
 * purposes a caller may use is the policy engine's decision.
 */

export const PURPOSES_OF_USE = [
  // treatment
  "TREAT",
  "ETREAT",
  "BTG",
  "ERTREAT",
  "CLINTRL",
  "COC",
  "POPHLTH",
  // payment
  "HPAYMT",
  "CLMATTCH",
  "COVAUTH",
  "COVERAGE",
  "ELIGDTRM",
  "ELIGVER",
  "ENROLLM",
  "MILDCRG",
  "REMITADV",
  // operations
  "HOPERAT",
  "CAREMGT",
  "DONAT",
  "FRAUD",
  "GOV",
  "HACCRED",
  "HCOMPL",
  "HDECD",
  "HDIRECT",
  "HDM",
  "HLEGAL",
  "HOUTCOMS",
  "HPRGRP",
  "HQUALIMP",
  "HSYSADMIN",
  "LABELING",
  "METAMGT",
  "MEMADMIN",
  "MILCDM",
  "PATADMIN",
  "PATSFTY",
  "PERFMSR",
  "RECORDMGT",
  "SYSDEV",
  "HTEST",
  "TRAIN",
  "HMARKT",
  // research
  "HRESCH",
  "BIORCH",
  "CLINTRCH",
  "CLINTRCHNPC",
  "CLINTRCHPC",
  "PRECLINTRCH",
  "DSRCH",
  "POARCH",
  "TRANSRCH",
  // requests, public health, safety
  "PATRQT",
  "FAMRQT",
  "PWATRNY",
  "SUPNWK",
  "PUBHLTH",
  "DISASTER",
  "THREAT",
] as const;

export type PurposeOfUse = (typeof PURPOSES_OF_USE)[number];

const known: ReadonlySet<string> = new Set(PURPOSES_OF_USE);

export function isPurposeOfUse(code: string): code is PurposeOfUse {
  return known.has(code);
}

/**
 * The purposes for which a break-glass review is closed: reviewing whether
 * an emergency access was justified is compliance work (HCOMPL), part of
 * running the organisation (HOPERAT), or done for patient safety (PATSFTY).
 * A treatment, payment or research purpose names something a review is
 * not, and the purpose is recorded in the audit: it must be one of these.
 */
export const REVIEW_PURPOSES: readonly PurposeOfUse[] = ["HCOMPL", "HOPERAT", "PATSFTY"];
