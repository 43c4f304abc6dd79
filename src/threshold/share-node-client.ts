/**
 * HTTP calls from a custos node to one share node: the body is serialised
 * once, signed (request-auth.ts) over exactly those bytes, sent with a
 * timeout, and the answer validated against its zod schema. Failures become a
 * `ShareNodeCallError` that says which node and whether it was unreachable
 * (connection refused, timeout) or answered with a refusal, so the
 * coordinator can name nodes precisely.
 */
import type { z } from "zod";
import { b64u, utf8 } from "../crypto/bytes.js";
import { type RequestSigner, signRequest } from "./request-auth.js";
import { ErrorBody, NodeInfo } from "./wire.js";

export const DEFAULT_TIMEOUT_MS = 3_000;

export class ShareNodeCallError extends Error {
  constructor(
    readonly node: string,
    readonly kind: "unreachable" | "refused" | "invalid_answer",
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

async function send(node: string, url: string, init: RequestInit, timeoutMs: number): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const why =
      err instanceof Error && err.name === "TimeoutError"
        ? `no answer within ${timeoutMs} ms`
        : "unreachable";
    throw new ShareNodeCallError(node, "unreachable", `${why} at ${url}`);
  }
  let json: unknown;
  try {
    json = await res.json();
  } catch {
    throw new ShareNodeCallError(node, "invalid_answer", `answered ${res.status} without JSON`);
  }
  if (!res.ok) {
    const e = ErrorBody.safeParse(json);
    const msg = e.success ? `${e.data.error}: ${e.data.message}` : `status ${res.status}`;
    throw new ShareNodeCallError(node, res.status >= 500 ? "unreachable" : "refused", `refused (${msg})`);
  }
  return json;
}

/** The share node's public keys (unauthenticated; pinned into the key descriptor at DKG). */
export async function fetchInfo(
  node: string,
  url: string,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<z.infer<typeof NodeInfo>> {
  const json = await send(node, new URL("/v1/threshold/info", url).toString(), { method: "GET" }, timeoutMs);
  const parsed = NodeInfo.safeParse(json);
  if (!parsed.success)
    throw new ShareNodeCallError(node, "invalid_answer", "info answer is not custos-share-node/v1");
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
): Promise<z.infer<S>> {
  const bytes = utf8(JSON.stringify(body));
  const headers = signRequest(signer, "POST", path, b64u.decode(ref.identityKey, "identityKey"), bytes);
  const json = await send(
    ref.node,
    new URL(path, ref.url).toString(),
    { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: bytes },
    timeoutMs,
  );
  const parsed = schema.safeParse(json);
  if (!parsed.success)
    throw new ShareNodeCallError(ref.node, "invalid_answer", `answer to ${path} is malformed`);
  return parsed.data;
}
