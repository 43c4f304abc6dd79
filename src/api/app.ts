/**
 * `createApp(deps)`: the HTTP API as a hono application with no module-level
 * state, so tests build it in memory and call `app.request()`. Cross-cutting
 * concerns live here and nowhere else: request ids, the body size limit, JSON
 * errors for every refusal (malformed JSON, wrong types, unknown fields,
 * oversize bodies, unknown routes — always 4xx with `{error:{code,message}}`),
 * and the one place an unexpected fault becomes a generic 500 that is logged
 * for the operator and tells the caller nothing. Every request leaves a
 * trace: its own audit event, or — refused before anyone was identified —
 * a count in the per-source aggregate (api/anonymous.ts), so anonymous
 * callers cannot grow the permanent log one event per request.
 */
import { randomUUID } from "node:crypto";
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { Logger } from "pino";
import { ApprovalService } from "../approvals/service.js";
import type { Auditor } from "../audit/auditor.js";
import { DenialTally } from "../audit/denial-tally.js";
import type { MerkleLog } from "../audit/merkle-log.js";
import type { CustodyChanger } from "../custody/custody-change.js";
import type { SealManager } from "../custody/seal.js";
import type { TpmCustody } from "../custody/tpm-custody.js";
import { CustosError } from "../errors.js";
import type { EnvelopeService } from "../keys/envelope-ops.js";
import type { KeyRing } from "../keys/keyring.js";
import type { Authorizer } from "../policy/authorizer.js";
import type { PolicyEngine } from "../policy/engine.js";
import { TpmResetError } from "../protect/tpm.js";
import type { Store } from "../store/store.js";
import { TpmUnavailableError } from "../tpm/rc.js";
import { AnonymousGuard } from "./anonymous.js";
import { Authenticator } from "./authenticate.js";
import { originGuard } from "./browser-guard.js";
import { gateFactory } from "./gate.js";
import type { JwtVerifier } from "./jwt.js";
import { approvalRoutes } from "./routes/approvals.js";
import { auditRoutes } from "./routes/audit.js";
import { envelopeRoutes } from "./routes/envelope.js";
import { keyRoutes } from "./routes/keys.js";
import { policyRoutes } from "./routes/policy.js";
import { rekeyRoutes } from "./routes/rekey.js";
import { reviewRoutes } from "./routes/reviews.js";
import { sysRoutes } from "./routes/sys.js";
import { tokenRoutes } from "./routes/tokens.js";
import { tpmRoutes } from "./routes/tpm.js";

export const MAX_BODY_BYTES = 64 * 1024;
/** Public, read-only routes that would only flood the log: status polls, probes, the API document. */
const UNAUDITED = new Set(["GET /v1/sys/seal-status", "GET /healthz", "GET /readyz", "GET /v1/openapi.json"]);

export interface AppDeps {
  store: Store;
  seal: SealManager;
  keys: KeyRing;
  envelope: EnvelopeService;
  auditor: Auditor;
  merkle: MerkleLog;
  authorizer: Authorizer;
  log: Logger;
  /** Rekey and root rotation (custody/custody-change.ts); without it those routes are absent. */
  custody?: CustodyChanger | null;
  /** The TPM's part in custody, on a node with a TPM. */
  tpm?: TpmCustody | null;
  /** The policy engine, when the server runs with --policy (then it is also `authorizer`). */
  policy?: PolicyEngine | null;
  /** Bearer JWT verification (--jwks-file/--jwks-url); needs a policy to map claims. */
  jwt?: JwtVerifier | null;
  /** Whether the listener verifies client certificates (--tls-client-ca). */
  clientCerts?: boolean;
  /** Browser origins allowed to call (--allowed-origin); a request naming any other `Origin` is refused. */
  allowedOrigins?: readonly string[];
  /** Counts and rate-limits refusals of unidentified callers (api/anonymous.ts); defaults when omitted. */
  anonymous?: AnonymousGuard;
}

export type App = OpenAPIHono;

export function errorBody(code: string, message: string, details?: Record<string, unknown>) {
  return { error: { code, message, ...details } };
}

/** Turns zod's issues into one message that names each field and what is wrong with it. */
function describeIssues(
  issues: readonly { path: PropertyKey[]; message: string; code?: string; keys?: string[] }[],
) {
  return issues
    .slice(0, 5)
    .map((i) => {
      const where = i.path.length ? i.path.map(String).join(".") : "body";
      if (i.code === "unrecognized_keys" && i.keys) return `${where}: unknown field(s) ${i.keys.join(", ")}`;
      return `${where}: ${i.message}`;
    })
    .join("; ");
}

export function createApp(deps: AppDeps): App {
  const app = new OpenAPIHono({
    defaultHook: (result, c) => {
      if (!result.success) {
        return c.json(errorBody("invalid_request", describeIssues(result.error.issues)), 400);
      }
    },
  });

  app.use("*", async function requestId(c, next) {
    // Always our own id: the audit relies on it to know whether a request has
    // its event, so a client must not be able to pick (or collide) it.
    const id = randomUUID();
    c.set("requestId", id);
    c.header("x-request-id", id);
    c.header("cache-control", "no-store");
    await next();
  });
  const anonymous = deps.anonymous ?? new AnonymousGuard(new DenialTally(deps.auditor));
  const authenticator = new Authenticator(
    deps.store,
    deps.authorizer,
    deps.jwt ?? null,
    deps.clientCerts ?? false,
  );
  app.use("*", async function auditEveryRequest(c, next) {
    await next();
    const requestId = c.get("requestId");
    const hasEvent = deps.auditor.takeRequest(requestId);
    // HEAD is GET without the body: the same rule.
    const route = `${c.req.method === "HEAD" ? "GET" : c.req.method} ${c.req.path}`;
    const refused = c.res.status >= 400;
    if (UNAUDITED.has(route) || (!refused && hasEvent)) {
      deps.auditor.endRequest(requestId);
      return;
    }
    try {
      const code = refused ? await errorCode(c.res) : undefined;
      const reason = code ? `${c.res.status} ${code}` : String(c.res.status);
      const principal =
        c.get("principal")?.id ?? (refused ? await anonymous.identify(c, authenticator) : undefined);
      if (refused && principal === undefined) {
        // Anyone can send these: counted per source, never an event each (finding 7).
        anonymous.refused(c, reason, hasEvent);
        return;
      }
      if (hasEvent) return;
      await deps.auditor.record(
        deps.auditor.event({
          principal: principal ?? "anonymous",
          operation: `http:${c.req.method} ${c.req.routePath}`,
          decision: refused ? "deny" : "allow",
          reason,
          requestId,
        }),
      );
    } catch (err) {
      c.res = handleError(err instanceof Error ? err : new Error(String(err)), c, deps.log);
    } finally {
      deps.auditor.endRequest(requestId);
    }
  });
  // A request with Content-Length cannot carry more than it declares (Node's
  // parser frames the body by it), so the header alone decides; only chunked
  // bodies are counted as they stream. Reading `c.req.raw.body` for every
  // request, as hono's bodyLimit does, materialises a web Request and stream
  // per request: in the envelope benchmark that was the largest single cost.
  app.use("*", anonymous.limitAnonymous);
  const tooLarge = (c: Context) =>
    c.json(errorBody("body_too_large", `request bodies are limited to ${MAX_BODY_BYTES} bytes`), 413);
  const streamingLimit = bodyLimit({ maxSize: MAX_BODY_BYTES, onError: tooLarge });
  app.use("*", async function limitBody(c, next) {
    if (c.req.header("transfer-encoding") !== undefined) return streamingLimit(c, next);
    const length = c.req.header("content-length");
    if (length !== undefined && !(Number(length) <= MAX_BODY_BYTES)) return tooLarge(c);
    return next();
  });

  app.use("*", originGuard(deps.allowedOrigins));

  app.onError((err, c) => handleError(err, c, deps.log));
  app.notFound((c) => c.json(errorBody("not_found", `no route ${c.req.method} ${c.req.path}`), 404));

  const approvals = deps.policy ? new ApprovalService(deps.store, deps.auditor, deps.policy) : null;
  const gate = gateFactory({ ...deps, approvals });
  sysRoutes(app, { ...deps, anonymous }, gate);
  tpmRoutes(app, deps, gate);
  keyRoutes(app, deps, gate);
  envelopeRoutes(app, deps, gate);
  tokenRoutes(app, deps, gate);
  auditRoutes(app, deps, gate);
  policyRoutes(app, deps, gate);
  reviewRoutes(app, deps, gate);
  approvalRoutes(app, deps, gate, approvals);
  if (deps.custody) rekeyRoutes(app, deps.custody, gate);

  app.get("/healthz", (c) => c.json({ ok: true }));
  app.get("/readyz", (c) =>
    deps.seal.sealed
      ? c.json({ ready: false, sealed: true, initialized: deps.seal.initialized }, 503)
      : c.json({ ready: true }),
  );
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });
  // Public and unaudited, so built once (on first use, when every route is
  // registered) and served as the same bytes: generating it costs ~30 ms.
  let openapi: string | null = null;
  app.get("/v1/openapi.json", (c) => {
    openapi ??= JSON.stringify(
      app.getOpenAPI31Document({
        openapi: "3.1.0",
        info: {
          title: "custos",
          version: "1",
          description: "Key custody service for electronic health records",
        },
      }),
    );
    return c.body(openapi, 200, { "content-type": "application/json" });
  });
  return app;
}

async function errorCode(res: Response): Promise<string | undefined> {
  try {
    return ((await res.clone().json()) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

function handleError(err: Error, c: Context, log: Logger): Response {
  if (err instanceof CustosError) {
    return c.json(err.toJSON(), err.status);
  }
  if (err instanceof TpmResetError) {
    return c.json(
      errorBody(
        "tpm_reset",
        "the TPM was reset and the keys it held are gone; the node is sealed until it is unsealed again",
      ),
      503,
    );
  }
  if (err instanceof TpmUnavailableError) {
    log.error({ err, requestId: c.get("requestId") }, "TPM unavailable");
    return c.json(errorBody("tpm_unavailable", "the TPM is not answering; try again shortly"), 503);
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    if (status === 400) return c.json(errorBody("invalid_json", "the request body is not valid JSON"), 400);
    if (status === 415) {
      return c.json(
        errorBody("unsupported_media_type", "send the body as Content-Type: application/json"),
        415,
      );
    }
    if (status === 413) return c.json(errorBody("body_too_large", "request body too large"), 413);
    if (status < 500) return c.json(errorBody("bad_request", err.message), status);
  }
  log.error({ err, requestId: c.get("requestId"), path: c.req.path }, "internal error");
  return c.json(errorBody("internal", "internal error; the operator log has the details"), 500);
}
