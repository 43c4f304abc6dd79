/**
 * Read access to the audit log, for auditors, witnesses and `custos audit
 * verify`: events in order (filtered through the store's indexes) with the
 * canonical JSON that was hashed and the chain hash, so a client recomputes
 * everything itself; the newest signed tree head; RFC 9162 inclusion and
 * consistency proofs. Leaf indices in proofs are 0-based (leaf i is the event
 * with seq i + 1), as in the RFC. The head comes with the countersignatures
 * the node collected from its witnesses (docs/FORMATS.md §8.3).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { cosignatureToJson } from "../../audit/cosignature.js";
import { treeHeadToJson } from "../../audit/tree-head.js";
import { hex } from "../../crypto/bytes.js";
import { CustosError } from "../../errors.js";
import type { AppDeps } from "../app.js";
import type { Gate } from "../gate.js";
import { AuditEventsResponse, AuditQuery, ErrorSchema } from "../schemas.js";
import { json } from "./responses.js";

const errors = {
  400: json(ErrorSchema, "Invalid request"),
  401: json(ErrorSchema, "No valid token"),
  403: json(ErrorSchema, "Not allowed"),
  404: json(ErrorSchema, "No such head or size"),
  503: json(ErrorSchema, "Audit unavailable, or no signing key loaded yet"),
};

const CosignatureSchema = z
  .object({
    witness: z.string(),
    witnessKey: z.string(),
    log: z.string(),
    size: z.number().int(),
    rootHash: z.string(),
    timestamp: z.number().int(),
    cosignedAt: z.number().int(),
    signature: z.string(),
  })
  .openapi("Cosignature");

const TreeHeadSchema = z
  .object({
    size: z.number().int(),
    rootHash: z.string(),
    timestamp: z.number().int(),
    signature: z.string(),
    publicKey: z.string(),
    cosignatures: z.array(CosignatureSchema),
  })
  .openapi("SignedTreeHead");

const size = z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

export function auditRoutes(app: OpenAPIHono, { store, auditor, merkle }: AppDeps, gate: Gate): void {
  const recordRead = (principal: string, requestId: string, reason: string) =>
    auditor.record(
      auditor.event({ principal, operation: "audit.read", decision: "allow", reason, requestId }),
    );

  /** The largest size a proof may be asked for: the log as it is now. */
  const withinLog = async (n: number, what: string) => {
    const logSize = await store.auditSize();
    if (n > logSize) {
      throw new CustosError(404, "beyond_log", `${what} ${n} is beyond the log's ${logSize} events`);
    }
  };

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/audit/events",
      tags: ["audit"],
      summary: "Audit events in chain order with their hashes, optionally filtered",
      security: [{ bearer: [] }],
      middleware: [gate("audit.read", { needsUnsealed: false })] as const,
      request: { query: AuditQuery },
      responses: { 200: json(AuditEventsResponse, "A page of events"), ...errors },
    }),
    async (c) => {
      const q = c.req.valid("query");
      // Stored times carry milliseconds; normalise the bounds so they compare as times.
      const iso = (t: string | undefined) => (t === undefined ? undefined : new Date(t).toISOString());
      const { patient, ...filters } = q;
      const contextHmacs = patient === undefined ? undefined : auditor.subjectHmacs(patient);
      const rows = await store.searchAudit({
        ...filters,
        fromSeq: q.from,
        since: iso(q.since),
        until: iso(q.until),
        contextHmacs,
      });
      // The patient's identifier itself never reaches the log, not even here.
      const about = patient === undefined ? "" : ", by patient";
      await recordRead(
        c.get("principal").id,
        c.get("requestId"),
        `events from ${q.from}${about}, ${rows.length} returned`,
      );
      const last = rows.at(-1);
      return c.json(
        {
          events: rows.map((r) => ({
            seq: r.event.seq,
            hash: r.hash,
            canonical: r.canonical,
            event: { ...r.event },
          })),
          next: rows.length === q.limit && last ? last.event.seq + 1 : null,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/audit/head",
      tags: ["audit"],
      summary:
        "The newest signed tree head (or the one of `size`, or the largest of at most `atMost` events), " +
        "with witnesses' countersignatures: each witness's newest, or with `size`/`atMost` those on exactly that head",
      security: [{ bearer: [] }],
      middleware: [gate("audit.read", { needsUnsealed: false })] as const,
      request: { query: z.strictObject({ size: size.optional(), atMost: size.optional() }) },
      responses: { 200: json(TreeHeadSchema, "Signed tree head"), ...errors },
    }),
    async (c) => {
      const { size: exact, atMost } = c.req.valid("query");
      if (exact !== undefined && atMost !== undefined) {
        throw new CustosError(400, "invalid_request", "give size or atMost, not both");
      }
      // atMost: a witness asks for the node's newest head over at most as many events as it countersigned (FORMATS §8.3).
      const head =
        atMost === undefined ? await store.getTreeHead(exact) : await store.getTreeHeadAtMost(atMost);
      const wanted = atMost === undefined ? exact : head?.size;
      const publicKey = merkle.publicKey;
      if (head === null) {
        const what =
          atMost !== undefined
            ? `no signed head of at most ${atMost} events`
            : exact === undefined
              ? "no tree head has been signed yet"
              : `no signed head of size ${exact}`;
        throw new CustosError(404, "no_tree_head", what);
      }
      if (publicKey === null) {
        throw new CustosError(503, "sealed", "the audit signing key is not loaded until custos is unsealed");
      }
      const cosignatures = await store.getCosignatures(wanted);
      await recordRead(c.get("principal").id, c.get("requestId"), `tree head of size ${head.size}`);
      return c.json(
        {
          ...treeHeadToJson(head, publicKey),
          cosignatures: cosignatures.map((r) => cosignatureToJson({ ...r, log: publicKey })),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/audit/proof/inclusion",
      tags: ["audit"],
      summary: "RFC 9162 inclusion proof of leaf `index` (0-based) in the tree of `size` events",
      security: [{ bearer: [] }],
      middleware: [gate("audit.read", { needsUnsealed: false })] as const,
      request: { query: z.strictObject({ index: z.coerce.number().int().min(0), size }) },
      responses: {
        200: json(
          z.object({
            index: z.number().int(),
            size: z.number().int(),
            leafHash: z.string(),
            proof: z.array(z.string()),
          }),
          "Inclusion proof",
        ),
        ...errors,
      },
    }),
    async (c) => {
      const { index, size: n } = c.req.valid("query");
      if (index >= n) throw new CustosError(400, "invalid_request", `index ${index} must be below size ${n}`);
      await withinLog(n, "size");
      const { leaf, proof } = await merkle.inclusionProof(index, n);
      await recordRead(c.get("principal").id, c.get("requestId"), `inclusion proof ${index} in ${n}`);
      return c.json(
        { index, size: n, leafHash: hex.encode(leaf), proof: proof.map((p) => hex.encode(p)) },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/audit/proof/consistency",
      tags: ["audit"],
      summary: "RFC 9162 consistency proof between the trees of `from` and `to` events",
      security: [{ bearer: [] }],
      middleware: [gate("audit.read", { needsUnsealed: false })] as const,
      request: { query: z.strictObject({ from: size, to: size }) },
      responses: {
        200: json(
          z.object({ from: z.number().int(), to: z.number().int(), proof: z.array(z.string()) }),
          "Consistency proof",
        ),
        ...errors,
      },
    }),
    async (c) => {
      const { from, to } = c.req.valid("query");
      if (from > to)
        throw new CustosError(400, "invalid_request", `from (${from}) must not exceed to (${to})`);
      await withinLog(to, "to");
      const proof = await merkle.consistencyProof(from, to);
      await recordRead(c.get("principal").id, c.get("requestId"), `consistency proof ${from} to ${to}`);
      return c.json({ from, to, proof: proof.map((p) => hex.encode(p)) }, 200);
    },
  );
}
