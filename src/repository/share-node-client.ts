/**
 * A share repository on a remote custos share node (`custos share-node`),
 * over HTTP(S): `PUT`/`GET /v1/repository/shares/{key}` with a bearer token
 * (docs/FORMATS.md §5.8). The token is a credential from the node's
 * configuration: sent only in the Authorization header, kept out of every
 * message. Each request has a timeout; any answer other than 200/204/404 is
 * an error naming the status, never the body. Requests go over the same
 * ShareNodeLink as the threshold calls (threshold/share-node-link.ts): HTTPS
 * with the configured CA and client certificate, plain http:// only to
 * loopback unless the operator allowed it, so the bearer token does not
 * cross a network in clear by accident.
 */
import { DEFAULT_LINK, type ShareNodeLink } from "../threshold/share-node-link.js";
import { assertShareBytes, assertShareKey, type ShareRepository } from "./share-repository.js";

export interface ShareNodeRepositoryOptions {
  url: string;
  token: string;
  timeoutMs?: number;
  /** TLS and the plain-http rule; default: https:// with the system CAs, or http:// on loopback. */
  link?: ShareNodeLink;
}

/** A share is at most 4096 bytes; an answer much larger is not a share. */
const MAX_ANSWER_BYTES = 64 * 1024;

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
      `v1/repository/shares/${encodeURIComponent(key)}`,
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
          maxAnswerBytes: MAX_ANSWER_BYTES,
        },
        this.#timeoutMs,
      );
    } catch (err) {
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
    if (res.status !== 204)
      throw new Error(`share node ${this.#base.host} refused the share (HTTP ${res.status})`);
  }

  async get(key: string): Promise<Uint8Array | null> {
    const res = await this.#fetch(key, { method: "GET" });
    if (res.status === 404) return null;
    if (res.status !== 200) throw new Error(`share node ${this.#base.host} answered HTTP ${res.status}`);
    return new Uint8Array(res.body);
  }

  toString(): string {
    return `ShareNodeRepository(${this.#base.origin})`;
  }
}
