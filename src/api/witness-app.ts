/**
 * The witness's HTTP API (docs/FORMATS.md §8.3): public and read-only — its
 * status (with any alarm), the heads it countersigned with their
 * countersignatures, one countersignature for a node to collect, and the
 * evidence of forks. Nothing here needs a token because everything served is
 * signed data that anyone may check, and nothing can be written. Built like
 * `createApp`: a factory over its dependencies, no module state, queries
 * checked with zod, every refusal a 4xx `{"error":{"code","message"}}`.
 */
import { Hono } from "hono";
import type { Logger } from "pino";
import { z } from "zod";
import { cosignatureToJson } from "../audit/cosignature.js";
import { treeHeadToJson } from "../audit/tree-head.js";
import type { Witness } from "../audit/witness.js";
import type { CosignedHead } from "../audit/witness-store.js";
import { CustosError } from "../errors.js";

const PAGE_MAX = 1000;
const logKey = z
  .string()
  .regex(/^[A-Za-z0-9_-]{43}$/, "log must be a node's audit key (43 base64url characters)");
const count = z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

const HeadsQuery = z.strictObject({
  log: logKey,
  from: count.default(1),
  limit: z.coerce.number().int().min(1).max(PAGE_MAX).default(PAGE_MAX),
});
const CosignatureQuery = z.strictObject({ log: logKey, size: count.optional() });
const EvidenceQuery = z.strictObject({ log: logKey.optional() });

const body = ({ head, cosignature }: CosignedHead) => ({
  head: treeHeadToJson(head, cosignature.log),
  cosignature: cosignatureToJson(cosignature),
});

function query<T extends z.ZodType>(schema: T, raw: Record<string, string>): z.infer<T> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.length ? i.path.join(".") : "query"}: ${i.message}`);
    throw new CustosError(400, "invalid_request", issues.join("; "));
  }
  return parsed.data;
}

export function createWitnessApp(deps: { witness: Witness; urls: readonly string[]; log: Logger }): Hono {
  const { witness, urls } = deps;
  const store = witness.store;
  const app = new Hono();

  app.onError(function witnessError(err, c) {
    if (err instanceof CustosError) return c.json(err.toJSON(), err.status);
    deps.log.error({ err }, "witness request failed");
    return c.json({ error: { code: "internal", message: "internal error" } }, 500);
  });
  app.notFound((c) =>
    c.json({ error: { code: "not_found", message: `no route ${c.req.method} ${c.req.path}` } }, 404),
  );

  app.get("/v1/witness/status", (c) => c.json(witness.status(urls)));

  app.get("/v1/witness/heads", (c) => {
    const q = query(HeadsQuery, c.req.query());
    const heads = store.heads(q.log, q.from, q.limit);
    const last = heads.at(-1);
    return c.json({
      log: q.log,
      heads: heads.map(body),
      next: heads.length === q.limit && last ? last.head.size + 1 : null,
    });
  });

  app.get("/v1/witness/cosignature", (c) => {
    const q = query(CosignatureQuery, c.req.query());
    const found = store.head(q.log, q.size);
    if (found === null) {
      const what = q.size === undefined ? "any head" : `a head of size ${q.size}`;
      throw new CustosError(
        404,
        "no_cosignature",
        `this witness has not countersigned ${what} of log ${q.log}`,
      );
    }
    return c.json(body(found));
  });

  app.get("/v1/witness/evidence", (c) => {
    const q = query(EvidenceQuery, c.req.query());
    return c.json({ evidence: store.evidence(q.log) });
  });

  app.get("/healthz", (c) => c.json({ ok: true }));
  return app;
}
