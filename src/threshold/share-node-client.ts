/**
 * HTTP calls from a custos node to one share node: the body is serialised
 * once, signed (request-auth.ts) over exactly those bytes, sent over the
 * node's link (share-node-link.ts: HTTPS, or http:// only where allowed) with
 * a timeout, and the answer validated against its zod schema. Failures become
 * a `ShareNodeCallError` that says which node and whether it was unreachable
 * (connection refused, timeout, TLS failure), answered with a refusal, gave
 * an answer of the wrong shape, or was refused by this node's transport rule
 * (`insecure`), so the coordinator can name nodes precisely.
 */
import type { z } from "zod";
import { b64u, utf8 } from "../crypto/bytes.js";
import { type RequestSigner, signRequest } from "./request-auth.js";
import { DEFAULT_LINK, type ShareNodeLink } from "./share-node-link.js";
import { ErrorBody, NodeInfo, SHARE_NODE_FORMAT } from "./wire.js";

export const DEFAULT_TIMEOUT_MS = 3_000;

export class ShareNodeCallError extends Error {
  constructor(
    readonly node: string,
    readonly kind: "unreachable" | "refused" | "invalid_answer" | "insecure",
    message: string,
  ) {
    super(`share node ${node}: ${message}`);
    this.name = "ShareNodeCallError";
  }
}

export interface ShareNodeRef {
  node: string;
  url: string;
  /** The share node's identity key, bound into the signature (b64u). */
  identityKey: string;
}

const MAX_ANSWER_BYTES = 1 << 20;

interface SendInit {
  method: "GET" | "POST";
  headers?: Record<string, string>;
  body?: Uint8Array;
}

async function send(
  link: ShareNodeLink,
  node: string,
  url: string,
  init: SendInit,
  timeoutMs: number,
): Promise<unknown> {
  let res: { status: number; body: Buffer };
  try {
    res = await link.exchange(url, { ...init, maxAnswerBytes: MAX_ANSWER_BYTES }, timeoutMs);
  } catch (err) {
    // The link's transport rule (share-node-link.ts): nothing was sent.
    if (err instanceof RangeError) throw new ShareNodeCallError(node, "insecure", err.message);
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      err instanceof Error && err.name === "TimeoutError"
        ? `no answer within ${timeoutMs} ms`
        : `unreachable${code ? ` (${code})` : ""}`;
    throw new ShareNodeCallError(node, "unreachable", `${why} at ${url}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(res.body.toString("utf8"));
  } catch {
    throw new ShareNodeCallError(node, "invalid_answer", `answered ${res.status} without JSON`);
  }
  if (res.status < 200 || res.status > 299) {
    const e = ErrorBody.safeParse(json);
    const msg = e.success ? `${e.data.error}: ${e.data.message}` : `status ${res.status}`;
    // A share node older than format v2 refuses the `format` field of a partial request (§11.5).
    const old = e.success && e.data.error === "invalid_request" && /unrecognized key.*format/i.test(msg);
    throw new ShareNodeCallError(
      node,
      res.status >= 500 ? "unreachable" : "refused",
      old
        ? `refused a format-v2 request (${msg}): it is an older share node (unblinded partials, custos-share-node/v1); upgrade it`
        : `refused (${msg})`,
    );
  }
  return json;
}

/** The share node's public keys (unauthenticated; pinned into the key descriptor at DKG). */
export async function fetchInfo(
  node: string,
  url: string,
  timeoutMs = DEFAULT_TIMEOUT_MS,
  link: ShareNodeLink = DEFAULT_LINK,
): Promise<z.infer<typeof NodeInfo>> {
  const json = await send(
    link,
    node,
    new URL("/v1/threshold/info", url).toString(),
    { method: "GET" },
    timeoutMs,
  );
  const parsed = NodeInfo.safeParse(json);
  if (!parsed.success) {
    const format = (json as { format?: unknown } | null)?.format;
    throw new ShareNodeCallError(
      node,
      "invalid_answer",
      format === "custos-share-node/v1"
        ? `runs an older protocol (custos-share-node/v1: partials on unblinded points); upgrade it to ${SHARE_NODE_FORMAT}`
        : `info answer is not ${SHARE_NODE_FORMAT}`,
    );
  }
  return parsed.data;
}

/** A signed POST of `body` to `path`; the answer must match `schema`. */
export async function callShareNode<S extends z.ZodTypeAny>(
  signer: RequestSigner,
  ref: ShareNodeRef,
  path: string,
  body: unknown,
  schema: S,
  timeoutMs = DEFAULT_TIMEOUT_MS,
  link: ShareNodeLink = DEFAULT_LINK,
): Promise<z.infer<S>> {
  const bytes = utf8(JSON.stringify(body));
  const headers = signRequest(signer, "POST", path, b64u.decode(ref.identityKey, "identityKey"), bytes);
  const json = await send(
    link,
    ref.node,
    new URL(path, ref.url).toString(),
    { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: bytes },
    timeoutMs,
  );
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const wrongFormat = parsed.error.issues.some((i) => i.path[0] === "format");
    const format = (json as { format?: unknown } | null)?.format;
    const named = typeof format === "string" ? `'${format.slice(0, 64)}'` : "none: a v1 answer";
    throw new ShareNodeCallError(
      ref.node,
      "invalid_answer",
      wrongFormat
        ? `answer to ${path} is in an older or unknown format (${named}); upgrade the share node`
        : `answer to ${path} is malformed`,
    );
  }
  return parsed.data;
}
