/**
 * Response codes checked against TPM 2.0 Part 2 §6.6 by hand: each expected
 * value below is built from the spec's constants (RC_VER1 0x100, RC_WARN
 * 0x900, RC_FMT1 0x080, TPM_RC_P 0x040, TPM_RC_S 0x800, TPM_RC_1..n 0x100·n),
 * not read back from the decoder.
 */
import { describe, expect, it } from "vitest";
import { decodeRc, TpmError } from "../../src/tpm/rc.js";

const RC_VER1 = 0x100;
const RC_WARN = 0x900;
const RC_FMT1 = 0x080;
const TPM_RC_P = 0x040;
const TPM_RC_S = 0x800;
const N = (n: number) => n << 8;

describe("format-0 errors (Part 2 §6.6.3)", () => {
  it.each([
    [RC_VER1 + 0x000, "INITIALIZE"],
    [RC_VER1 + 0x001, "FAILURE"],
    [RC_VER1 + 0x00b, "PRIVATE"],
    [RC_VER1 + 0x019, "HMAC"],
    [RC_VER1 + 0x026, "POLICY"],
    [RC_VER1 + 0x028, "PCR_CHANGED"],
    [RC_VER1 + 0x02e, "TOO_MANY_CONTEXTS"],
    [RC_VER1 + 0x043, "COMMAND_CODE"],
    [RC_VER1 + 0x04b, "NV_SPACE"],
    [RC_VER1 + 0x050, "BAD_CONTEXT"],
    [RC_VER1 + 0x055, "SENSITIVE"],
  ])("code %i is TPM_RC_%s, an error, not retryable", (rc, name) => {
    const d = decodeRc(rc);
    expect(d).toMatchObject({
      rc,
      name,
      format: 0,
      warning: false,
      vendor: false,
      tpm12: false,
      retryable: false,
    });
    expect(d.subject).toBeUndefined();
  });

  it("PCR_CHANGED is 0x128", () => {
    expect(decodeRc(0x128).name).toBe("PCR_CHANGED");
  });
});

describe("format-0 warnings (Part 2 §6.6.3, RC_WARN)", () => {
  it("RETRY 0x922 is a warning the client retries", () => {
    expect(RC_WARN + 0x022).toBe(0x922);
    expect(decodeRc(0x922)).toMatchObject({ name: "RETRY", format: 0, warning: true, retryable: true });
  });

  it("TESTING 0x90a and YIELDED 0x908 are retryable too", () => {
    expect(decodeRc(0x90a)).toMatchObject({ name: "TESTING", retryable: true });
    expect(decodeRc(0x908)).toMatchObject({ name: "YIELDED", retryable: true });
  });

  it.each([
    [0x902, "OBJECT_MEMORY"],
    [0x903, "SESSION_MEMORY"],
    [0x901, "CONTEXT_GAP"],
    [0x921, "LOCKOUT"],
    [0x920, "NV_RATE"],
    [0x910, "REFERENCE_H0"],
    [0x916, "REFERENCE_H6"],
    [0x918, "REFERENCE_S0"],
    [0x91e, "REFERENCE_S6"],
  ])("code %i is TPM_RC_%s, a warning that is not retried", (rc, name) => {
    expect(decodeRc(rc)).toMatchObject({ name, format: 0, warning: true, retryable: false });
  });
});

describe("format-1 errors with a position (Part 2 §6.6.4)", () => {
  it("0x9a2 is BAD_AUTH on session 1", () => {
    const rc = RC_FMT1 + 0x022 + TPM_RC_S + N(1);
    expect(rc).toBe(0x9a2);
    expect(decodeRc(rc)).toMatchObject({
      name: "BAD_AUTH",
      format: 1,
      warning: false,
      retryable: false,
      subject: { kind: "session", index: 1 },
    });
  });

  it("0x1c4 is VALUE on parameter 1", () => {
    const rc = RC_FMT1 + 0x004 + TPM_RC_P + N(1);
    expect(rc).toBe(0x1c4);
    expect(decodeRc(rc)).toMatchObject({
      name: "VALUE",
      format: 1,
      subject: { kind: "parameter", index: 1 },
    });
  });

  it("0x18b is HANDLE on handle 1", () => {
    const rc = RC_FMT1 + 0x00b + N(1);
    expect(rc).toBe(0x18b);
    expect(decodeRc(rc)).toMatchObject({ name: "HANDLE", format: 1, subject: { kind: "handle", index: 1 } });
  });

  it("parameters go up to 15, handles and sessions up to 7", () => {
    expect(decodeRc(RC_FMT1 + 0x015 + TPM_RC_P + N(0xf)).subject).toEqual({ kind: "parameter", index: 15 });
    expect(decodeRc(RC_FMT1 + 0x01d + TPM_RC_S + N(7)).subject).toEqual({ kind: "session", index: 7 });
    expect(decodeRc(RC_FMT1 + 0x01d + TPM_RC_S + N(7)).name).toBe("POLICY_FAIL");
    expect(decodeRc(RC_FMT1 + 0x00b + N(7)).subject).toEqual({ kind: "handle", index: 7 });
  });

  it("a format-1 code with no position names none", () => {
    expect(decodeRc(RC_FMT1 + 0x01d)).toMatchObject({ name: "POLICY_FAIL", subject: undefined });
    expect(decodeRc(0x09d).name).toBe("POLICY_FAIL");
  });

  it.each([
    [0x081, "ASYMMETRIC"],
    [0x082, "ATTRIBUTES"],
    [0x08e, "AUTH_FAIL"],
    [0x092, "SCHEME"],
    [0x095, "SIZE"],
    [0x09a, "INSUFFICIENT"],
    [0x09f, "INTEGRITY"],
    [0x0a1, "RESERVED_BITS"],
    [0x0a6, "CURVE"],
    [0x0a7, "ECC_POINT"],
  ])("code %i is TPM_RC_%s", (rc, name) => {
    expect(decodeRc(rc)).toMatchObject({ name, format: 1 });
  });
});

describe("codes that are not TCG TPM 2.0 codes", () => {
  it("a vendor code (bit 10, TPM_RC_T) is flagged and not named from the TCG table", () => {
    const d = decodeRc(RC_VER1 + 0x400 + 0x001);
    expect(d).toMatchObject({ vendor: true, tpm12: false, format: 0, name: "UNKNOWN_0x501" });
    expect(d.retryable).toBe(false);
  });

  it("a vendor warning is not retried even if its number matches RETRY", () => {
    expect(decodeRc(RC_WARN + 0x400 + 0x022)).toMatchObject({
      vendor: true,
      warning: true,
      retryable: false,
    });
  });

  it("a TPM 1.2 code (bit 8 clear, bit 7 clear) is flagged", () => {
    expect(decodeRc(0x001)).toMatchObject({ tpm12: true, format: 0, name: "UNKNOWN_0x001" });
    expect(decodeRc(0x03d)).toMatchObject({ tpm12: true, name: "UNKNOWN_0x03d" });
  });

  it("an unassigned TPM 2.0 number is UNKNOWN, never a neighbour's name", () => {
    expect(decodeRc(RC_VER1 + 0x07f).name).toBe("UNKNOWN_0x17f");
    expect(decodeRc(RC_FMT1 + 0x006).name).toBe("UNKNOWN_0x086");
  });
});

describe("TpmError", () => {
  it("reads as command, kind, name, position and code", () => {
    const e = new TpmError(0x9a2, "TPM2_HMAC");
    expect(e.message).toBe("TPM2_HMAC: TPM error TPM_RC_BAD_AUTH (session 1) [0x9a2]");
    expect(e.name).toBe("TpmError");
    expect(e.is("BAD_AUTH")).toBe(true);
    expect(e.is("AUTH_FAIL")).toBe(false);
    expect(e.retryable).toBe(false);
    expect(e.command).toBe("TPM2_HMAC");
  });

  it("says warning for warnings and marks RETRY retryable", () => {
    const e = new TpmError(0x922, "TPM2_GetRandom");
    expect(e.message).toBe("TPM2_GetRandom: TPM warning TPM_RC_RETRY [0x922]");
    expect(e.retryable).toBe(true);
    expect(new TpmError(0x902, "TPM2_Load").message).toBe(
      "TPM2_Load: TPM warning TPM_RC_OBJECT_MEMORY [0x902]",
    );
    expect(new TpmError(0x902, "TPM2_Load").retryable).toBe(false);
  });

  it("names parameter and handle positions", () => {
    expect(new TpmError(0x1c4, "TPM2_Create").message).toBe(
      "TPM2_Create: TPM error TPM_RC_VALUE (parameter 1) [0x1c4]",
    );
    expect(new TpmError(0x18b, "TPM2_Load").message).toBe(
      "TPM2_Load: TPM error TPM_RC_HANDLE (handle 1) [0x18b]",
    );
  });
});
