/**
 * The CLI's HTTP client, after the `vault` CLI's conventions: the server is
 * `CUSTOS_ADDR` (default http://127.0.0.1:8200), the token `CUSTOS_TOKEN`, and
 * — for a server running a policy — the purpose of use of requests that do
 * not carry one in their body, `CUSTOS_PURPOSE` (sent as X-Purpose-Of-Use),
 * and the approval a command runs under, `CUSTOS_APPROVAL_ID` (sent as
 * X-Approval-Id: e.g. a rekey the policy lets run only with approvals).
 * Every failure becomes a `CliError` carrying the documented exit code and a
 * message that says what to do next; server errors keep their code and the
 * details the server gave (which custodian, which field).
 */

export const EXIT = {
  ok: 0,
  /** The server refused the request (4xx): bad input, not allowed, conflict. */
  refused: 1,
  /** Bad usage or unusable local input (missing file, wrong passphrase). */
  usage: 2,
  /** The server could not be reached or failed (5xx other than sealed). */
  unavailable: 3,
  /** The server is sealed or not initialised. */
  sealed: 4,
} as const;

export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode: number,
    readonly code?: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  addr?: string;
  token?: string;
}

export class Client {
  readonly addr: string;
  readonly token: string | undefined;

  constructor(opts: ClientOptions = {}) {
    this.addr = (opts.addr ?? process.env.CUSTOS_ADDR ?? "http://127.0.0.1:8200").replace(/\/+$/, "");
    this.token = opts.token ?? process.env.CUSTOS_TOKEN;
  }

  async request<T>(method: string, path: string, body?: unknown, opts: { auth?: boolean } = {}): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    const purpose = process.env.CUSTOS_PURPOSE;
    if (purpose) headers["x-purpose-of-use"] = purpose;
    const approval = process.env.CUSTOS_APPROVAL_ID;
    if (approval) headers["x-approval-id"] = approval;
    if (opts.auth !== false) {
      if (!this.token) {
        throw new CliError("no token: set CUSTOS_TOKEN (or pass --token) to a custos token", EXIT.usage);
      }
      headers.authorization = `Bearer ${this.token}`;
    }
    let res: Response;
    try {
      res = await fetch(this.addr + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      const why =
        err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      throw new CliError(
        `cannot reach custos at ${this.addr} (${why}); is the server running? set CUSTOS_ADDR to its address`,
        EXIT.unavailable,
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      throw new CliError(
        `custos at ${this.addr} answered ${res.status} with a body that is not JSON`,
        EXIT.unavailable,
      );
    }
    if (res.ok) return json as T;
    const error =
      (json as { error?: { code?: string; message?: string } & Record<string, unknown> }).error ?? {};
    const { code, message, ...details } = error;
    const exitCode =
      code === "sealed" || code === "not_initialized"
        ? EXIT.sealed
        : res.status >= 500
          ? EXIT.unavailable
          : EXIT.refused;
    throw new CliError(`${message ?? `HTTP ${res.status}`}${hint(code)}`, exitCode, code, details);
  }
}

function hint(code: string | undefined): string {
  switch (code) {
    case "unauthenticated":
      return " (check CUSTOS_TOKEN)";
    case "forbidden":
      return " (ask an administrator for a token with the right role)";
    case "key_not_found":
      return " (custos keys list shows the keys)";
    default:
      return "";
  }
}
