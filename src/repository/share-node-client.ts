/**
 * A share repository on a remote custos share node (`custos share-node`),
 * over HTTP(S): `PUT`/`GET /v1/repository/shares/{key}` with a bearer token
 * (docs/FORMATS.md §5.8). The token is a credential from the node's
 * configuration: sent only in the Authorization header, kept out of every
 * message. Each request has a timeout; any answer other than 200/204/404 is
 * an error naming the status, never the body.
 */
import { assertShareBytes, assertShareKey, type ShareRepository } from "./share-repository.js";

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
      `v1/repository/shares/${encodeURIComponent(key)}`,
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
    await res.arrayBuffer().catch(() => undefined);
    if (res.status !== 204)
      throw new Error(`share node ${this.#base.host} refused the share (HTTP ${res.status})`);
  }

  async get(key: string): Promise<Uint8Array | null> {
    const res = await this.#fetch(key, { method: "GET" });
    const body = new Uint8Array(await res.arrayBuffer());
    if (res.status === 404) return null;
    if (res.status !== 200) throw new Error(`share node ${this.#base.host} answered HTTP ${res.status}`);
    return body;
  }

  toString(): string {
    return `ShareNodeRepository(${this.#base.origin})`;
  }
}
