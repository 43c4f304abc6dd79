/**
 * TPM response codes (Part 2 §6.6) decoded into readable errors. A code is
 * either format 0 (bit 7 clear: a TCG error or warning numbered in bits 0–6,
 * severity in bit 11, vendor in bit 10) or format 1 (bit 7 set: an error in
 * bits 0–5 that names the handle, parameter or session it concerns in bits
 * 8–11). Warnings that mean "send it again" (RETRY, TESTING, YIELDED) are
 * marked retryable; the client retries those itself.
 */

const FMT0_ERRORS: Record<number, string> = {
  0: "INITIALIZE",
  1: "FAILURE",
  3: "SEQUENCE",
  11: "PRIVATE",
  25: "HMAC",
  32: "DISABLED",
  33: "EXCLUSIVE",
  36: "AUTH_TYPE",
  37: "AUTH_MISSING",
  38: "POLICY",
  39: "PCR",
  40: "PCR_CHANGED",
  45: "UPGRADE",
  46: "TOO_MANY_CONTEXTS",
  47: "AUTH_UNAVAILABLE",
  48: "REBOOT",
  49: "UNBALANCED",
  66: "COMMAND_SIZE",
  67: "COMMAND_CODE",
  68: "AUTHSIZE",
  69: "AUTH_CONTEXT",
  70: "NV_RANGE",
  71: "NV_SIZE",
  72: "NV_LOCKED",
  73: "NV_AUTHORIZATION",
  74: "NV_UNINITIALIZED",
  75: "NV_SPACE",
  76: "NV_DEFINED",
  80: "BAD_CONTEXT",
  81: "CPHASH",
  82: "PARENT",
  83: "NEEDS_TEST",
  84: "NO_RESULT",
  85: "SENSITIVE",
};

const FMT0_WARNINGS: Record<number, string> = {
  1: "CONTEXT_GAP",
  2: "OBJECT_MEMORY",
  3: "SESSION_MEMORY",
  4: "MEMORY",
  5: "SESSION_HANDLES",
  6: "OBJECT_HANDLES",
  7: "LOCALITY",
  8: "YIELDED",
  9: "CANCELED",
  10: "TESTING",
  32: "NV_RATE",
  33: "LOCKOUT",
  34: "RETRY",
  35: "NV_UNAVAILABLE",
};
for (let i = 0; i < 7; i++) {
  FMT0_WARNINGS[0x010 + i] = `REFERENCE_H${i}`;
  FMT0_WARNINGS[0x018 + i] = `REFERENCE_S${i}`;
}

const FMT1_ERRORS: Record<number, string> = {
  1: "ASYMMETRIC",
  2: "ATTRIBUTES",
  3: "HASH",
  4: "VALUE",
  5: "HIERARCHY",
  7: "KEY_SIZE",
  8: "MGF",
  9: "MODE",
  10: "TYPE",
  11: "HANDLE",
  12: "KDF",
  13: "RANGE",
  14: "AUTH_FAIL",
  15: "NONCE",
  16: "PP",
  18: "SCHEME",
  21: "SIZE",
  22: "SYMMETRIC",
  23: "TAG",
  24: "SELECTOR",
  26: "INSUFFICIENT",
  27: "SIGNATURE",
  28: "KEY",
  29: "POLICY_FAIL",
  31: "INTEGRITY",
  32: "TICKET",
  33: "RESERVED_BITS",
  34: "BAD_AUTH",
  35: "EXPIRED",
  36: "POLICY_CC",
  37: "BINDING",
  38: "CURVE",
  39: "ECC_POINT",
};

const RETRYABLE = new Set(["RETRY", "TESTING", "YIELDED"]);

export interface DecodedRc {
  rc: number;
  /** The spec's name without the TPM_RC_ prefix, e.g. "POLICY_FAIL"; "UNKNOWN_0x…" if we do not know it. */
  name: string;
  format: 0 | 1;
  warning: boolean;
  /** Format 1: which handle, parameter or session (1-based) the error concerns, when the TPM says. */
  subject?: { kind: "handle" | "parameter" | "session"; index: number };
  vendor: boolean;
  /** A TPM 1.2 code: not from a TPM 2.0 at all. */
  tpm12: boolean;
  retryable: boolean;
}

export function decodeRc(rc: number): DecodedRc {
  const hexRc = `0x${rc.toString(16).padStart(3, "0")}`;
  if (rc & 0x80) {
    const number = rc & 0x3f;
    const n = (rc >>> 8) & 0xf;
    let subject: DecodedRc["subject"];
    if (rc & 0x40) subject = { kind: "parameter", index: n };
    else if (n & 0x8) subject = { kind: "session", index: n & 0x7 };
    else if (n > 0) subject = { kind: "handle", index: n };
    const name = FMT1_ERRORS[number] ?? `UNKNOWN_${hexRc}`;
    return { rc, name, format: 1, warning: false, subject, vendor: false, tpm12: false, retryable: false };
  }
  const tpm12 = (rc & 0x100) === 0;
  const vendor = (rc & 0x400) !== 0;
  const warning = (rc & 0x800) !== 0;
  const number = rc & 0x7f;
  const table = warning ? FMT0_WARNINGS : FMT0_ERRORS;
  const name = tpm12 || vendor ? `UNKNOWN_${hexRc}` : (table[number] ?? `UNKNOWN_${hexRc}`);
  return { rc, name, format: 0, warning, vendor, tpm12, retryable: warning && RETRYABLE.has(name) };
}

/** The TPM answered with a non-zero response code. */
export class TpmError extends Error {
  override name = "TpmError";
  readonly rc: number;
  readonly decoded: DecodedRc;
  readonly command: string;

  constructor(rc: number, command: string) {
    const d = decodeRc(rc);
    const where = d.subject ? ` (${d.subject.kind} ${d.subject.index})` : "";
    const kind = d.warning ? "warning" : "error";
    super(`${command}: TPM ${kind} TPM_RC_${d.name}${where} [0x${rc.toString(16).padStart(3, "0")}]`);
    this.rc = rc;
    this.decoded = d;
    this.command = command;
  }

  get retryable(): boolean {
    return this.decoded.retryable;
  }

  /** True when the code's base is `name`, whatever handle, parameter or session it names. */
  is(name: string): boolean {
    return this.decoded.name === name;
  }
}

/** The TPM could not be reached, or its answer could not be read: the caller should answer 503 and try later. */
export class TpmUnavailableError extends Error {
  override name = "TpmUnavailableError";
}
