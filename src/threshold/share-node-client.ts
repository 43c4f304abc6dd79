/**
 * HTTP calls from a custos node to one share node: the body is serialised
 * once, signed (request-auth.ts) over exactly those bytes, sent with a
 * timeout, and the answer validated against its zod schema. Failures become a
 * `ShareNodeCallError` that says which node and whether it was unreachable
 * (connection refused, timeout) or answered with a refusal, so the
 * coordinator can name nodes precisely.
 */
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
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

// Connection pools, one per scheme: share nodes are called on every threshold
// unwrap, and a kept-alive connection saves a handshake each time.
const agents = { "http:": new HttpAgent({ keepAlive: true }), "https:": new HttpsAgent({ keepAlive: true }) };
const MAX_ANSWER_BYTES = 1 << 20;

interface SendInit {
  method: "GET" | "POST";
  headers?: Record<string, string>;
  body?: Uint8Array;
}

/**
 * One HTTP exchange: status and body text, or why it failed. A kept-alive
 * connection the share node closed just as it was reused is retried once on
 * a new one, so an idle pool never makes a healthy node look unreachable.
 */
function exchange(
  url: URL,
  init: SendInit,
  timeoutMs: number,
  retry = true,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const scheme = url.protocol === "https:" ? "https:" : "http:";
    const headers = { ...init.headers, ...(init.body ? { "content-length": String(init.body.length) } : {}) };
    const req = (scheme === "https:" ? httpsRequest : httpRequest)(
      url,
      { method: init.method, headers, agent: agents[scheme] },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) req.destroy(new Error("answer too large"));
          else chunks.push(chunk);
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.setTimeout(timeoutMs, () =>
      req.destroy(Object.assign(new Error("timeout"), { name: "TimeoutError" })),
    );
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (retry && req.reusedSocket && err.code === "ECONNRESET") {
        exchange(url, init, timeoutMs, false).then(resolve, reject);
      } else reject(err);
    });
    req.end(init.body);
  });
}

/**
 * node:http rather than fetch: measured here at a third of fetch's cost per
 * request (fetch's per-call setup and AbortSignal), which is on the path of
 * every partial.
 */
async function send(node: string, url: string, init: SendInit, timeoutMs: number): Promise<unknown> {
  let res: { status: number; text: string };
  try {
    res = await exchange(new URL(url), init, timeoutMs);
  } catch (err) {
    const why =
      err instanceof Error && err.name === "TimeoutError"
        ? `no answer within ${timeoutMs} ms`
        : "unreachable";
    throw new ShareNodeCallError(node, "unreachable", `${why} at ${url}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(res.text);
  } catch {
    throw new ShareNodeCallError(node, "invalid_answer", `answered ${res.status} without JSON`);
  }
  if (res.status < 200 || res.status > 299) {
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
