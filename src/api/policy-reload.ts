/**
 * Reloading the policy, from `SIGHUP` or `POST /v1/sys/policy/reload`: the
 * file is read, validated and linted again, and only a document without
 * errors replaces the running one (PolicyEngine.reload swaps it in one
 * assignment). Either way the attempt is audited with the file's digest, so
 * the log says which policy decided which requests, and a refused document
 * is logged for the operator with each finding.
 */
import type { Logger } from "pino";
import type { Auditor } from "../audit/auditor.js";
import { type PolicyEngine, PolicyLoadError } from "../policy/engine.js";

export type ReloadResult =
  | { ok: true; file: string; digest: string; previous: string }
  | { ok: false; file: string; digest: string; message: string };

export async function reloadPolicy(
  engine: PolicyEngine,
  auditor: Auditor,
  who: { principal: string; requestId?: string; rule?: string },
  log?: Pick<Logger, "info" | "error">,
  /** The digest an approval bound: any other document is refused. */
  expectedDigest?: string,
): Promise<ReloadResult> {
  const previous = engine.digest;
  let result: ReloadResult;
  try {
    const next = engine.reload(engine.file, expectedDigest);
    result = { ok: true, file: next.file, digest: next.digest, previous };
    log?.info({ file: next.file, digest: next.digest, previous }, "policy reloaded");
  } catch (err) {
    if (!(err instanceof PolicyLoadError)) throw err;
    result = { ok: false, file: engine.file, digest: previous, message: err.message };
    log?.error({ file: engine.file }, `${err.message}\nthe running policy stays in force`);
  }
  await auditor.record(
    auditor.event({
      principal: who.principal,
      operation: "policy.reload",
      decision: result.ok ? "allow" : "error",
      reason: result.ok
        ? `policy ${result.file} sha256:${result.digest} replaces sha256:${previous}`
        : `policy ${result.file} refused, sha256:${previous} stays: ${result.message.split("\n")[0]}`,
      requestId: who.requestId,
      rule: who.rule,
    }),
  );
  return result;
}
