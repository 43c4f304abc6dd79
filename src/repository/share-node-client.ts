/**
 * A share repository on a remote custos share node (`custos share-node`),
 * over HTTP(S): `PUT`/`GET /v2/repository/shares/{key}` with a bearer token
 * that the share node scopes to this node's identity (docs/FORMATS.md §5.8,
 * `custos-repository/v2`). The token is a credential from the node's
 * configuration: sent only in the Authorization header, kept out of every
 * message. Each request has a timeout, and an answer is read only up to
 * MAX_SHARE_BYTES (a share) or MAX_ERROR_BYTES (a refusal) — a share node is
 * trusted for availability, not to be reasonable about sizes. Any answer
 * other than 200/204/404 `no_share` is an error naming the status, never
 * the body.
 */
import { discardBody, readBounded } from "../net/bounded-read.js";
import {
  assertShareBytes,
  assertShareKey,
  MAX_SHARE_BYTES,
  type ShareRepository,
} from "./share-repository.js";

/** The most of a refusal's JSON body read, to find its error code. */
export const MAX_ERROR_BYTES = 4096;

export interface ShareNodeRepositoryOptions {
  url: string;
  token: string;
  timeoutMs?: number;
}

export class ShareNodeRepository implements ShareRepository {
  readonly #base: URL;
  readonly #token: string;
  readonly #timeoutMs: number;

  constructor({ url, token, timeoutMs = 5000 }: ShareNodeRepositoryOptions) {
    const base = new URL(url);
    if (base.protocol !== "https:" && base.protocol !== "http:") throw new RangeError("url must be http(s)");
    if (base.username || base.password) throw new RangeError("url must not carry credentials; use token");
    if (typeof token !== "string" || token.length < 16)
      throw new RangeError("token must be at least 16 characters");
    this.#base = base;
    this.#token = token;
    this.#timeoutMs = timeoutMs;
  }

  #url(key: string): URL {
    assertShareKey(key);
    return new URL(
      `v2/repository/shares/${encodeURIComponent(key)}`,
      this.#base.href.endsWith("/") ? this.#base : `${this.#base.href}/`,
    );
  }

  async #fetch(key: string, init: RequestInit): Promise<Response> {
    const url = this.#url(key);
    try {
      return await fetch(url, {
        ...init,
        headers: { ...init.headers, authorization: `Bearer ${this.#token}` },
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new Error(`share node ${this.#base.host} did not answer (${cause})`);
    }
  }

  async put(key: string, share: Uint8Array): Promise<void> {
    assertShareBytes(share);
    const res = await this.#fetch(key, {
      method: "PUT",
      headers: { "content-type": "application/octet-stream" },
      body: Buffer.from(share),
    });
    if (res.status === 204) return discardBody(res.body);
    throw new Error(`share node ${this.#base.host} refused the share (${await this.#why(res)})`);
  }

  async get(key: string): Promise<Uint8Array | null> {
    const res = await this.#fetch(key, { method: "GET" });
    if (res.status === 200) {
      return this.#read(res, MAX_SHARE_BYTES, "share");
    }
    const why = await this.#why(res);
    if (why === "HTTP 404 no_share") return null;
    throw new Error(`share node ${this.#base.host} answered ${why}`);
  }

  async #read(res: Response, limit: number, what: string): Promise<Uint8Array> {
    try {
      return await readBounded(res.body, limit, {
        what: `the ${what} answered by share node ${this.#base.host}`,
        declaredLength: res.headers.get("content-length"),
      });
    } catch (err) {
      if (err instanceof RangeError) throw err;
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new Error(`share node ${this.#base.host} did not finish its answer (${cause})`);
    }
  }

  /**
   * "HTTP <status> <error code>" from a refusal's JSON, or "HTTP <status>"; a
   * share node that does not speak v2 answers the old routes' 404 without
   * `no_share`, which is then an error rather than "no share".
   */
  async #why(res: Response): Promise<string> {
    let code = "";
    try {
      const body = await this.#read(res, MAX_ERROR_BYTES, "refusal");
      const parsed = JSON.parse(Buffer.from(body).toString("utf8")) as { error?: unknown };
      if (typeof parsed.error === "string" && /^[a-z0-9_]{1,64}$/.test(parsed.error))
        code = ` ${parsed.error}`;
    } catch {
      // no code: the status alone
    }
    const hint = res.status === 404 && code !== " no_share" ? " (does it speak custos-repository/v2?)" : "";
    return `HTTP ${res.status}${code}${hint}`;
  }

  toString(): string {
    return `ShareNodeRepository(${this.#base.origin})`;
  }
}
