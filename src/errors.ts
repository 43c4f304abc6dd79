/**
 * The one error type that leaves the service as an answer. Every refusal
 * carries a stable machine-readable `code`, an HTTP status, a message a person
 * can act on, and optional details (which custodian, which field); nothing
 * else about a failure — stack, SQL, key material — ever reaches the caller.
 * Any other error is internal: logged for the operator, answered with a
 * generic 500. It lives below every layer so keys, custody and api share it.
 */

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

export class CustosError extends Error {
  override name = "CustosError";
  constructor(
    readonly status: ErrorStatus,
    readonly code: string,
    message: string,
    readonly details?: Record<string, string | number | boolean | string[]>,
  ) {
    super(message);
  }

  toJSON(): { error: { code: string; message: string } & Record<string, unknown> } {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }
}

export const sealedError = (): CustosError =>
  new CustosError(503, "sealed", "custos is sealed: custodians must unseal it (custos operator unseal)");

export const auditUnavailableError = (): CustosError =>
  new CustosError(
    503,
    "audit_unavailable",
    "the audit log cannot be written, so the operation was refused; retry when storage is back",
  );
