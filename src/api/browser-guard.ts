/**
 * What keeps a browser from being used against the API (cross-site request
 * forgery). Under mutual TLS a browser holding a client certificate
 * presents it to any page's request, so a cross-origin form post arrives
 * authenticated. Two checks close that, each sufficient for forms:
 * a request carrying an `Origin` header is refused unless the operator
 * configured that origin (`custos server --allowed-origin`, none by
 * default: custos has no web interface of its own, and its clients — the
 * CLI, services — send no `Origin`); and the state-changing routes that
 * take no other input (approve, deny, execute) need a JSON body, a content
 * type a cross-origin page can only send after a CORS preflight, which
 * custos never answers.
 */
import { createMiddleware } from "hono/factory";
import { CustosError } from "../errors.js";

/** Checks one `--allowed-origin` value: scheme, host and optional port, nothing else. */
export function parseAllowedOrigin(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RangeError(`allowed origin '${value}' is not a URL (https://host[:port])`);
  }
  const origin = url.origin;
  if (origin === "null" || value.replace(/\/$/, "").toLowerCase() !== origin.toLowerCase()) {
    throw new RangeError(`allowed origin '${value}' must be just scheme://host[:port], e.g. ${origin}`);
  }
  return origin.toLowerCase();
}

/** Refuses (403 `origin_not_allowed`) any request whose `Origin` header is not one of `allowed`. */
export function originGuard(allowed: readonly string[] = []) {
  const origins = new Set(allowed.map(parseAllowedOrigin));
  return createMiddleware(async function refuseForeignOrigin(c, next) {
    const origin = c.req.header("origin");
    if (origin !== undefined && !origins.has(origin.toLowerCase())) {
      throw new CustosError(
        403,
        "origin_not_allowed",
        `requests from origin '${origin.slice(0, 200)}' are refused; the operator allows a browser origin with custos server --allowed-origin`,
      );
    }
    await next();
  });
}

/** Refuses (415) a request whose body is not declared JSON: forms and text/plain cannot carry a vote. */
export const jsonOnly = createMiddleware(async function requireJsonBody(c, next) {
  if (!/^application\/([\w.-]+\+)?json\b/i.test(c.req.header("content-type") ?? "")) {
    throw new CustosError(
      415,
      "unsupported_media_type",
      "send a JSON body (Content-Type: application/json) naming the approval's id and digest",
    );
  }
  await next();
});
