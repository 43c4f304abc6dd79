/**
 * How a custos node reaches its share nodes (docs/FORMATS.md §11.4): which
 * URLs it may use and with what TLS. Share nodes serve HTTPS (`custos
 * share-node --tls-cert/--tls-key`, optionally `--tls-client-ca`); the custos
 * node verifies them against `--share-node-ca` (else the system CAs) and,
 * for mutual TLS, presents `--share-node-client-cert/--share-node-client-key`.
 * Plain `http://` is accepted only to a loopback address (a share node on the
 * same machine, the test suite), or anywhere when the operator says so with
 * `--insecure-share-node-http`: partials are blinded (§11.5) and reveal no
 * key even in clear, but requests name keys and share ids, and repository
 * shares travel with a bearer token. The URL is checked when the
 * configuration is read and again before every request, so a URL that came
 * another way (one recorded in an older key descriptor) is refused too. One
 * pair of keep-alive agents per link: a partial is on the path of every
 * unwrap, and a kept-alive connection saves a handshake each time. node:http
 * rather than fetch: a third of fetch's cost per request here, and fetch
 * takes no CA or client certificate without undici.
 */

import { X509Certificate } from "node:crypto";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { isIPv4 } from "node:net";
import { createSecureContext } from "node:tls";
import { BodyTooLargeError, checkDeclaredLength } from "../net/bounded-read.js";

/** PEM contents: the CA share nodes' certificates chain to, and this node's client certificate and key. */
export interface ShareNodeTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export interface ShareNodeLinkOptions {
  tls?: ShareNodeTls;
  /** `--insecure-share-node-http`: allow plain http:// to addresses that are not loopback. */
  allowInsecureHttp?: boolean;
}

/** A share node URL this link refuses: plain http:// to a non-loopback address without the flag. */
export class InsecureShareNodeUrlError extends RangeError {
  constructor(readonly url: string) {
    super(
      `share node URL ${url} is plain http:// to an address that is not loopback: requests and answers would cross the network unencrypted. Serve the share node with HTTPS (custos share-node --tls-cert/--tls-key) and use https://, or accept the risk with --insecure-share-node-http`,
    );
    this.name = "InsecureShareNodeUrlError";
  }
}

/** 127.0.0.0/8, ::1 and `localhost`; `hostname` as URL gives it (IPv6 in brackets). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (host === "localhost" || host === "::1") return true;
  return isIPv4(host) && host.startsWith("127.");
}

/** Parses a share node URL and applies the transport rule; RangeError naming what is wrong. */
export function checkShareNodeUrl(url: string, allowInsecureHttp: boolean): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RangeError(`share node URL '${url}' is not a URL`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:")
    throw new RangeError(`share node URL ${u.origin} must be https:// (or http:// on loopback)`);
  if (u.protocol === "http:" && !allowInsecureHttp && !isLoopbackHost(u.hostname))
    throw new InsecureShareNodeUrlError(u.origin);
  return u;
}

export interface Exchange {
  method: "GET" | "PUT" | "POST";
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Largest answer accepted; a larger one (declared or streamed) fails the exchange with BodyTooLargeError. */
  maxAnswerBytes: number;
  /** What the answer is, for that error ("the share answered by share node H"). */
  what?: string;
}

export class ShareNodeLink {
  readonly allowInsecureHttp: boolean;
  readonly #http = new HttpAgent({ keepAlive: true });
  readonly #https: HttpsAgent;

  constructor({ tls = {}, allowInsecureHttp = false }: ShareNodeLinkOptions = {}) {
    if ((tls.cert === undefined) !== (tls.key === undefined))
      throw new RangeError("give the share-node client certificate and its key together");
    this.allowInsecureHttp = allowInsecureHttp;
    const options = {
      minVersion: "TLSv1.2" as const,
      ...(tls.ca && { ca: tls.ca }),
      ...(tls.cert && tls.key && { cert: tls.cert, key: tls.key }),
    };
    // Built once now so that a PEM that does not parse, or a key that does not
    // match its certificate, fails at configuration rather than at the first
    // unwrap. OpenSSL skips a CA that is not a certificate; X509Certificate does not.
    if (tls.ca) {
      try {
        new X509Certificate(tls.ca);
      } catch {
        throw new RangeError("the share-node CA is not a PEM certificate");
      }
    }
    createSecureContext(options);
    this.#https = new HttpsAgent({ keepAlive: true, ...options });
  }

  /** The URL, parsed, if this link may use it; else InsecureShareNodeUrlError or RangeError. */
  check(url: string): URL {
    return checkShareNodeUrl(url, this.allowInsecureHttp);
  }

  /**
   * One exchange: status and body, or why it failed (the error's `code` is
   * Node's, e.g. ECONNREFUSED or a TLS verification code; a timeout is a
   * TimeoutError). A kept-alive connection the share node closed just as it
   * was reused is retried once on a new one, so an idle pool never makes a
   * healthy node look unreachable.
   */
  exchange(url: string, init: Exchange, timeoutMs: number): Promise<{ status: number; body: Buffer }> {
    return this.#exchange(this.check(url), init, timeoutMs, true);
  }

  #exchange(
    url: URL,
    init: Exchange,
    timeoutMs: number,
    retry: boolean,
  ): Promise<{ status: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const tls = url.protocol === "https:";
      const headers = {
        ...init.headers,
        ...(init.body ? { "content-length": String(init.body.length) } : {}),
      };
      const req = (tls ? httpsRequest : httpRequest)(
        url,
        { method: init.method, headers, agent: tls ? this.#https : this.#http },
        (res) => {
          const what = init.what ?? `the answer of share node ${url.host}`;
          const declared = res.headers["content-length"];
          try {
            checkDeclaredLength(declared, init.maxAnswerBytes, what);
          } catch (err) {
            req.destroy(err as Error);
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > init.maxAnswerBytes) req.destroy(new BodyTooLargeError(what, init.maxAnswerBytes));
            else chunks.push(chunk);
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
          res.on("error", reject);
        },
      );
      req.setTimeout(timeoutMs, () =>
        req.destroy(Object.assign(new Error("timeout"), { name: "TimeoutError" })),
      );
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (retry && req.reusedSocket && err.code === "ECONNRESET") {
          this.#exchange(url, init, timeoutMs, false).then(resolve, reject);
        } else reject(err);
      });
      req.end(init.body);
    });
  }

  /** Closes the pooled connections. */
  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }
}

/** https:// with the system CAs, or http:// on loopback, no client certificate: for callers that configure nothing. */
export const DEFAULT_LINK = new ShareNodeLink();
