/**
 * The threshold routes of a share node (docs/FORMATS.md §11): its public keys,
 * the two DKG/refresh steps (deal, complete), committing a refresh, and the
 * partial decryption with its DLEQ proof. A partial request carries the
 * blinded point R' = ρ·R (format custos-partial-request/v2, §11.5), which is
 * all this node sees and audits; a version-1 request (the ciphertext's own
 * point, no `format`) is refused with `unsupported_format`. Every route but
 * `info` requires a
 * request signed by an allowed custos node (threshold/request-auth.ts), and
 * every body is checked with the zod schemas of threshold/wire.ts. Every
 * partial and every round is written to the share node's audit file before
 * the answer leaves. A body is read only after the request's headers pass
 * the checks that need no body (an allowed node, a fresh timestamp), and never
 * past MAX_REQUEST_BYTES; refused requests are counted, not written one by
 * one (partial-audit.ts). `wrongPartials` is a fault-injection switch for the test
 * suite only (`--insecure-test-wrong-partials`): the node then answers with a
 * partial that is off by G, which its proof cannot cover.
 */
import { createHash } from "node:crypto";
import type { Context, Hono } from "hono";
import { z } from "zod";
import { b64u, zero } from "../crypto/bytes.js";
import { BodyTooLargeError, checkDeclaredLength, readBounded } from "../net/bounded-read.js";
import { DealingError, makeDealing, openDealings } from "../threshold/dkg.js";
import { encodeDleq } from "../threshold/dleq.js";
import { G, mod, pointFromBytes, pointToBytes, scalarFromBytes } from "../threshold/group.js";
import { computePartial } from "../threshold/partial.js";
import type { RequestVerifier } from "../threshold/request-auth.js";
import {
  CommitRequest,
  CompleteRequest,
  DealRequest,
  PARTIAL_FORMAT,
  PARTIAL_REQUEST_FORMAT,
  PartialRequest,
  type Round,
  SHARE_NODE_FORMAT,
} from "../threshold/wire.js";
import type { ShareNodeKeys } from "./node-keys.js";
import type { PartialAudit } from "./partial-audit.js";
import { encodeShare, type ShareFiles } from "./share-files.js";

export interface ThresholdRouteDeps {
  keys: ShareNodeKeys;
  files: ShareFiles;
  audit: PartialAudit;
  verifier: RequestVerifier;
  /** TEST ONLY: answer every partial request with a wrong partial. */
  wrongPartials?: boolean;
}

/** The largest request body a share node reads (docs/FORMATS.md §11.4). */
export const MAX_REQUEST_BYTES = 256 * 1024;

/** A refusal with a status and a JSON body `{error, message}`; `close` when the body was left unread. */
class Refusal extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 409 | 413 | 503,
    readonly code: string,
    message: string,
    readonly close = false,
  ) {
    super(message);
  }
}

async function signedBody<S extends z.ZodTypeAny>(
  c: Context,
  deps: ThresholdRouteDeps,
  schema: S,
): Promise<{ node: string; body: z.infer<S> }> {
  const path = new URL(c.req.url).pathname;
  const unauthenticated = (reason: string, close: boolean) => {
    deps.audit.refused(path, reason);
    return new Refusal(
      401,
      `unauthenticated_${reason}`,
      `request not accepted: ${reason} (sign requests with an allowed custos node key)`,
      close,
    );
  };
  const tooLarge = () => {
    deps.audit.refused(path, "too_large");
    return new Refusal(413, "too_large", `request body must be at most ${MAX_REQUEST_BYTES} bytes`, true);
  };
  try {
    checkDeclaredLength(c.req.header("content-length"), MAX_REQUEST_BYTES, "the request body");
  } catch {
    throw tooLarge();
  }
  const pre = deps.verifier.precheck((h) => c.req.header(h));
  if (!pre.ok) throw unauthenticated(pre.reason, true);
  let raw: Uint8Array;
  try {
    raw = await readBounded(c.req.raw.body, MAX_REQUEST_BYTES, {
      what: "the request body",
      onExceed: "release",
    });
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw tooLarge();
    throw err;
  }
  const auth = deps.verifier.verify(c.req.method, path, (h) => c.req.header(h), raw);
  if (!auth.ok) throw unauthenticated(auth.reason, false);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(raw).toString("utf8"));
  } catch {
    throw new Refusal(400, "invalid_json", "request body must be JSON");
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Refusal(
      400,
      "invalid_request",
      `${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`,
    );
  }
  return { node: auth.node, body: parsed.data };
}

function selfIn(round: Round, self: number, keys: ShareNodeKeys): void {
  const me = round.participants.find((p) => p.index === self);
  if (
    !me ||
    me.identityKey !== b64u.encode(keys.publicKey) ||
    me.hpkeKey !== b64u.encode(keys.hpkePublicKey)
  ) {
    throw new Refusal(
      400,
      "not_a_participant",
      `participant ${self} of this round is not this share node (its keys differ)`,
    );
  }
  if (round.threshold > round.participants.length) {
    throw new Refusal(400, "invalid_request", "threshold exceeds the number of participants");
  }
  if (new Set(round.participants.map((p) => p.index)).size !== round.participants.length) {
    throw new Refusal(400, "invalid_request", "participant indices must be distinct");
  }
}

/**
 * The body of a partial request, version 2 only: a request without our
 * `format` (version 1 sent the ciphertext's own point) is refused by name.
 */
function partialRequest(json: unknown): PartialRequest {
  const format = (json as { format?: unknown } | null)?.format;
  if (format !== PARTIAL_REQUEST_FORMAT) {
    throw new Refusal(
      400,
      "unsupported_format",
      `partial requests must be ${PARTIAL_REQUEST_FORMAT} (a blinded point, docs/FORMATS.md §11.5); this one is ${typeof format === "string" ? `'${format.slice(0, 64)}'` : "version 1 (an unblinded point)"}, which this share node refuses: upgrade the custos node`,
    );
  }
  const parsed = PartialRequest.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Refusal(
      400,
      "invalid_request",
      `${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`,
    );
  }
  return parsed.data;
}

export function thresholdRoutes(app: Hono, deps: ThresholdRouteDeps): void {
  const { keys, files, audit } = deps;
  const verificationShares = new Map<string, ReturnType<typeof G.multiply>>();

  // Errors are answered here rather than in app.onError: other route modules share the app.
  const guarded = (handler: (c: Context) => Promise<Response>) =>
    async function thresholdRoute(c: Context): Promise<Response> {
      try {
        return await handler(c);
      } catch (err) {
        if (err instanceof Refusal) {
          // A body left unread is not drained: the connection closes after the answer.
          if (err.close) c.header("connection", "close");
          return c.json({ error: err.code, message: err.message }, err.status);
        }
        return c.json(
          { error: "unavailable", message: "the share node could not complete the request" },
          503,
        );
      }
    };

  app.get("/v1/threshold/info", (c) =>
    c.json({
      format: SHARE_NODE_FORMAT,
      identityKey: b64u.encode(keys.publicKey),
      hpkeKey: b64u.encode(keys.hpkePublicKey),
    }),
  );

  app.post(
    "/v1/threshold/dkg/deal",
    guarded(async (c) => {
      const { node, body } = await signedBody(c, deps, DealRequest);
      selfIn(body.round, body.self, keys);
      if (body.round.kind === "refresh") {
        const file = files.read(body.round.shareId);
        if (!file?.current || file.current.epoch !== body.round.epoch - 1 || file.index !== body.self) {
          throw new Refusal(
            409,
            "no_current_share",
            `no share of epoch ${body.round.epoch - 1} to refresh for ${body.round.shareId}`,
          );
        }
      } else if (files.read(body.round.shareId)?.current) {
        throw new Refusal(409, "share_exists", `share ${body.round.shareId} already exists`);
      }
      const dealing = await makeDealing(body.round, body.self, keys);
      await audit.record({
        op: `${body.round.kind}.deal`,
        node,
        shareId: body.round.shareId,
        key: body.round.key,
        version: body.round.version,
        set: body.round.set,
        epoch: body.round.epoch,
        index: body.self,
      });
      return c.json(dealing);
    }),
  );

  app.post(
    "/v1/threshold/dkg/complete",
    guarded(async (c) => {
      const { node, body } = await signedBody(c, deps, CompleteRequest);
      const { round, self } = body;
      selfIn(round, self, keys);
      const existing = files.read(round.shareId);
      let base = 0n;
      if (round.kind === "refresh") {
        if (!existing?.current || existing.current.epoch !== round.epoch - 1) {
          throw new Refusal(409, "no_current_share", `no share of epoch ${round.epoch - 1} to refresh`);
        }
        const bytes = b64u.decode(existing.current.share, "share");
        base = scalarFromBytes(bytes, "share", true);
        zero(bytes);
      } else if (existing?.current) {
        throw new Refusal(409, "share_exists", `share ${round.shareId} already exists`);
      }
      let sum: bigint;
      try {
        sum = await openDealings(round, self, body.dealings, keys.hpkePrivateKey);
      } catch (err) {
        if (err instanceof DealingError) {
          await audit.record({
            op: `${round.kind}.complaint`,
            node,
            shareId: round.shareId,
            dealers: err.dealers,
          });
          throw new Refusal(409, "bad_dealing", err.message);
        }
        throw err;
      }
      const share = mod(base + sum);
      files.write({
        format: "custos-threshold-share/v1",
        shareId: round.shareId,
        key: round.key,
        version: round.version,
        set: round.set,
        index: self,
        threshold: round.threshold,
        current: existing?.current ?? null,
        pending: { epoch: round.epoch, share: encodeShare(share) },
      });
      const y = share === 0n ? null : G.multiply(share);
      if (y === null)
        throw new Refusal(409, "degenerate_share", "the combined share is zero; run the round again");
      await audit.record({
        op: `${round.kind}.complete`,
        node,
        shareId: round.shareId,
        key: round.key,
        version: round.version,
        set: round.set,
        epoch: round.epoch,
        index: self,
      });
      return c.json({ verificationShare: b64u.encode(pointToBytes(y)) });
    }),
  );

  app.post(
    "/v1/threshold/commit",
    guarded(async (c) => {
      const { node, body } = await signedBody(c, deps, CommitRequest);
      const file = files.read(body.shareId);
      if (!file) throw new Refusal(404, "unknown_share", `no share ${body.shareId}`);
      if (file.current?.epoch !== body.epoch) {
        if (file.pending?.epoch !== body.epoch)
          throw new Refusal(409, "unknown_epoch", `no share of epoch ${body.epoch}`);
        files.write({ ...file, current: file.pending, pending: null });
      }
      await audit.record({ op: "commit", node, shareId: body.shareId, epoch: body.epoch });
      return c.json({ shareId: body.shareId, epoch: body.epoch });
    }),
  );

  app.post(
    "/v1/threshold/partial",
    guarded(async (c) => {
      const { node, body: json } = await signedBody(c, deps, z.unknown());
      const body = partialRequest(json);
      let r: ReturnType<typeof pointFromBytes>;
      try {
        r = pointFromBytes(b64u.decode(body.point, "point"), "point");
      } catch (err) {
        throw new Refusal(400, "invalid_point", (err as Error).message);
      }
      const found = files.share(body.shareId, body.epoch);
      if (!found)
        throw new Refusal(
          404,
          "unknown_share",
          `no share ${body.shareId} of epoch ${body.epoch} on this node`,
        );
      const { file, share } = found;
      try {
        if (file.key !== body.key || file.version !== body.version) {
          throw new Refusal(409, "wrong_key", `share ${body.shareId} belongs to another key`);
        }
        const x = scalarFromBytes(share.reveal(), "share", true);
        if (x === 0n) throw new Refusal(409, "degenerate_share", "this share is zero");
        // Started now, awaited before answering: the flush overlaps the multiplications.
        const recorded = audit.record({
          op: "partial",
          node,
          shareId: body.shareId,
          key: file.key,
          version: file.version,
          set: file.set,
          index: file.index,
          epoch: body.epoch,
          // R', the blinded point: all this node ever learns of the ciphertext.
          point: body.point,
        });
        recorded.catch(() => undefined); // awaited below; this only keeps an early rejection from going unhandled
        // Y = x·G, kept per share, keyed by a hash of the share itself so it always matches x.
        const slot = createHash("sha256").update(share.reveal()).update(body.shareId).digest("hex");
        let y = verificationShares.get(slot);
        if (y === undefined) {
          if (verificationShares.size > 4096) verificationShares.clear();
          y = G.multiply(x);
          verificationShares.set(slot, y);
        }
        const { partial, proof } = computePartial(x, r, body.shareId, body.epoch, file.index, y);
        const answer = deps.wrongPartials ? partial.add(G) : partial;
        await recorded;
        return c.json({
          format: PARTIAL_FORMAT,
          index: file.index,
          partial: b64u.encode(pointToBytes(answer)),
          proof: b64u.encode(encodeDleq(proof)),
        });
      } finally {
        share.dispose();
      }
    }),
  );
}
