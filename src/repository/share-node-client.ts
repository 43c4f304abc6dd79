/**
 * A share repository on a remote custos share node (`custos share-node`),
 * over HTTP(S): `PUT`/`GET /v2/repository/shares/{key}` with a bearer token
 * that the share node scopes to this node's identity (docs/FORMATS.md §5.8,
 * `custos-repository/v2`). The token is a credential from the node's
 * configuration: sent only in the Authorization header, kept out of every
 * message. Each request has a timeout, and an answer is read only up to
 * MAX_SHARE_BYTES (a share or a refusal) — a share node is trusted for
 * availability, not to be reasonable about sizes. Any answer other than
 * 200/204/404 `no_share` is an error naming the status and the refusal's
 * error code, never the body. Requests go over the same ShareNodeLink as the
 * threshold calls (threshold/share-node-link.ts): HTTPS with the configured
 * CA and client certificate, plain http:// only to loopback unless the
 * operator allowed it, so the bearer token does not cross a network in clear
 * by accident.
 */
import { BodyTooLargeError } from "../net/bounded-read.js";
import { DEFAULT_LINK, type ShareNodeLink } from "../threshold/share-node-link.js";
import {
  assertShareBytes,
  assertShareKey,
  MAX_SHARE_BYTES,
  type ShareRepository,
} from "./share-repository.js";

export interface ShareNodeRepositoryOptions {
  url: string;
  token: string;
  timeoutMs?: number;
  /** TLS and the plain-http rule; default: https:// with the system CAs, or http:// on loopback. */
  link?: ShareNodeLink;
}

export class ShareNodeRepository implements ShareRepository {
  readonly #base: URL;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #link: ShareNodeLink;

  constructor({ url, token, timeoutMs = 5000, link = DEFAULT_LINK }: ShareNodeRepositoryOptions) {
    const base = link.check(url);
    if (base.username || base.password) throw new RangeError("url must not carry credentials; use token");
    if (typeof token !== "string" || token.length < 16)
      throw new RangeError("token must be at least 16 characters");
    this.#base = base;
    this.#token = token;
    this.#timeoutMs = timeoutMs;
    this.#link = link;
  }

  #url(key: string): URL {
    assertShareKey(key);
    return new URL(
      `v2/repository/shares/${encodeURIComponent(key)}`,
      this.#base.href.endsWith("/") ? this.#base : `${this.#base.href}/`,
    );
  }

  async #fetch(
    key: string,
    init: { method: "GET" | "PUT"; headers?: Record<string, string>; body?: Uint8Array },
  ): Promise<{ status: number; body: Buffer }> {
    const url = this.#url(key);
    try {
      return await this.#link.exchange(
        url.href,
        {
          ...init,
          headers: { ...init.headers, authorization: `Bearer ${this.#token}` },
          maxAnswerBytes: MAX_SHARE_BYTES,
          what: `the ${init.method === "GET" ? "share" : "answer"} answered by share node ${this.#base.host}`,
        },
        this.#timeoutMs,
      );
    } catch (err) {
      if (err instanceof BodyTooLargeError) throw err;
      const cause = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
      throw new Error(`share node ${this.#base.host} did not answer (${cause})`);
    }
  }

  async put(key: string, share: Uint8Array): Promise<void> {
    assertShareBytes(share);
    const res = await this.#fetch(key, {
      method: "PUT",
      headers: { "content-type": "application/octet-stream" },
      body: share,
    });
    if (res.status === 204) return;
    throw new Error(`share node ${this.#base.host} refused the share (${this.#why(res)})`);
  }

  async get(key: string): Promise<Uint8Array | null> {
    const res = await this.#fetch(key, { method: "GET" });
    if (res.status === 200) return new Uint8Array(res.body);
    const why = this.#why(res);
    if (why === "HTTP 404 no_share") return null;
    throw new Error(`share node ${this.#base.host} answered ${why}`);
  }

  /**
   * "HTTP <status> <error code>" from a refusal's JSON, or "HTTP <status>"; a
   * share node that does not speak v2 answers the old routes' 404 without
   * `no_share`, which is then an error rather than "no share".
   */
  #why(res: { status: number; body: Buffer }): string {
    let code = "";
    try {
      const parsed = JSON.parse(res.body.toString("utf8")) as { error?: unknown };
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
