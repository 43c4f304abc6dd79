/**
 * The share-storage routes of a share node (docs/FORMATS.md §5.8, protocol
 * `custos-repository/v2`): a custos node stores the sealed shares of its
 * custody tree's `repository` leaves here and reads them back at unattended
 * unseal. `PUT` and `GET /v2/repository/shares/{key}`, bytes in and out. The
 * share node never sees a share in the clear (each is HPKE-sealed to the
 * asking node's repository key), so it is trusted for availability only.
 *
 * Each bearer token is scoped to one custos node identity
 * (`--repository-client NODE_KEY=TOKEN_FILE`), and each node's shares live in
 * a directory of their own, `DATA/repository/<hex node key>/`: a token can
 * only ever name its own node's shares. In v1 every token reached every
 * share, so one hospital's node could read and overwrite another's (issue 10,
 * finding 12). A request for a share that another node holds, or a `PUT` of a
 * share document naming another node, is refused 403 `wrong_node`; the `/v1`
 * routes answer 410 with the reason. The token is compared as a SHA-256 hash
 * in constant time, before a byte of the body is read, and a body is never
 * read past MAX_SHARE_BYTES. Kept apart from the threshold routes so the two
 * grow independently on the same process.
 */
import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { Context, Hono } from "hono";
import { b64u, constantTimeEqual, hex } from "../crypto/bytes.js";
import { BodyTooLargeError, checkDeclaredLength, readBounded } from "../net/bounded-read.js";
import { DirectoryRepository } from "../repository/directory.js";
import { MAX_SHARE_BYTES, SHARE_KEY_RE } from "../repository/share-repository.js";

export const REPOSITORY_PROTOCOL = "custos-repository/v2";

/** One custos node allowed to keep shares here, and the token it presents. */
export interface RepositoryClient {
  /** The custos node's Ed25519 identity key (32 bytes). */
  node: Uint8Array;
  /** At least 16 characters. */
  token: string;
}

export interface RepositoryRouteDeps {
  /** DATA/repository: one subdirectory per client node. */
  dir: string;
  clients: RepositoryClient[];
}

const hash = (token: string) => new Uint8Array(createHash("sha256").update(token, "utf8").digest());

interface Scoped {
  node: string;
  repository: DirectoryRepository;
  hash: Uint8Array;
}

/** The clients with their hashed tokens and their own directories; duplicates are refused. */
function scope(deps: RepositoryRouteDeps): Scoped[] {
  const seenNodes = new Set<string>();
  const seenTokens = new Set<string>();
  return deps.clients.map(({ node, token }) => {
    if (node.length !== 32) throw new RangeError("a repository client's node key must be 32 bytes");
    if (token.length < 16) throw new RangeError("repository tokens must be at least 16 characters");
    const name = b64u.encode(node);
    if (seenNodes.has(name)) throw new RangeError(`node ${name} is given twice`);
    if (seenTokens.has(token)) throw new RangeError("one token is given for two nodes; each needs its own");
    seenNodes.add(name);
    seenTokens.add(token);
    return {
      node: name,
      repository: new DirectoryRepository(join(deps.dir, hex.encode(node))),
      hash: hash(token),
    };
  });
}

/** Shares stored by protocol v1, directly in DATA/repository: no longer served (FORMATS §5.8 says how to move them). */
export function legacyShareFiles(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith(".share"));
  } catch {
    return [];
  }
}

/** A refusal `{error, message}`; the connection is closed when the body was left unread. */
function refuse(c: Context, status: 400 | 401 | 403 | 404 | 410 | 413, error: string, message: string) {
  if (status === 401 || status === 410 || status === 413) c.header("connection", "close");
  return c.json({ error, message }, status);
}

/** The share document's labels, if the bytes are one (the share node cannot open it, only read its labels). */
function labels(body: Uint8Array): { node: string; initId: string; path: string } | null {
  try {
    const doc = JSON.parse(Buffer.from(body).toString("utf8")) as Record<string, unknown>;
    const { format, node, initId, path } = doc;
    if (typeof format !== "string" || !/^custos-repository-share\/v[0-9]+$/.test(format)) return null;
    if (typeof node !== "string" || typeof initId !== "string" || typeof path !== "string") return null;
    return { node, initId, path };
  } catch {
    return null;
  }
}

/** Storage faults answer 503 JSON here rather than in app.onError: other route modules share the app. */
const guarded = (handler: (c: Context) => Promise<Response>) =>
  async function repositoryRoute(c: Context): Promise<Response> {
    try {
      return await handler(c);
    } catch {
      return c.json({ error: "unavailable", message: "the share node could not complete the request" }, 503);
    }
  };

export function repositoryRoutes(app: Hono, deps: RepositoryRouteDeps): void {
  const clients = scope(deps);

  /** The client whose token the request bears, checked against every token in constant time. */
  const client = (c: Context): Scoped | null => {
    const m = /^Bearer (\S+)$/.exec(c.req.header("authorization") ?? "");
    const presented = m ? hash(m[1] as string) : new Uint8Array(32);
    let found: Scoped | null = null;
    for (const s of clients) if (constantTimeEqual(s.hash, presented)) found = s;
    return m ? found : null;
  };
  const unauthorized = (c: Context) =>
    refuse(c, 401, "unauthorized", "a valid repository bearer token is required");
  const keyOf = (c: Context): string | null => {
    const key = c.req.param("key") ?? "";
    return SHARE_KEY_RE.test(key) ? key : null;
  };
  const badKey = (c: Context) =>
    refuse(c, 400, "invalid_key", "the key must be '<init id>/<custody tree leaf path>'");
  /** Another node holds a share under this key. */
  const heldByAnother = async (self: Scoped, key: string) => {
    for (const other of clients)
      if (other !== self && (await other.repository.get(key)) !== null) return true;
    return false;
  };
  const wrongNode = (c: Context, self: Scoped) =>
    refuse(
      c,
      403,
      "wrong_node",
      `this share belongs to another custos node; the token presented is scoped to node ${self.node}`,
    );

  app.put(
    "/v2/repository/shares/:key{.+}",
    guarded(async (c) => {
      const self = client(c);
      if (self === null) return unauthorized(c);
      const key = keyOf(c);
      if (key === null) return badKey(c);
      const tooLarge = () =>
        refuse(c, 413, "too_large", `the share must be at most ${MAX_SHARE_BYTES} bytes`);
      let body: Uint8Array;
      try {
        checkDeclaredLength(c.req.header("content-length"), MAX_SHARE_BYTES, "the share");
        body = await readBounded(c.req.raw.body, MAX_SHARE_BYTES, { what: "the share", onExceed: "release" });
      } catch (err) {
        if (err instanceof BodyTooLargeError) return tooLarge();
        throw err;
      }
      const doc = body.length === 0 ? null : labels(body);
      if (doc === null)
        return refuse(c, 400, "invalid_share", "the body must be a custos-repository-share document");
      if (doc.node !== self.node)
        return refuse(
          c,
          403,
          "wrong_node",
          `the share names custos node ${doc.node}; the token presented is scoped to node ${self.node}`,
        );
      if (`${doc.initId}/${doc.path}` !== key)
        return refuse(
          c,
          400,
          "invalid_share",
          "the share is labelled for another init id or path than its key",
        );
      if (await heldByAnother(self, key)) return wrongNode(c, self);
      await self.repository.put(key, body);
      return c.body(null, 204);
    }),
  );

  app.get(
    "/v2/repository/shares/:key{.+}",
    guarded(async (c) => {
      const self = client(c);
      if (self === null) return unauthorized(c);
      const key = keyOf(c);
      if (key === null) return badKey(c);
      const share = await self.repository.get(key);
      if (share !== null)
        return c.body(Buffer.from(share), 200, { "content-type": "application/octet-stream" });
      if (await heldByAnother(self, key)) return wrongNode(c, self);
      return refuse(c, 404, "no_share", "no share is stored under this key for this node");
    }),
  );

  app.all("/v1/repository/*", (c) =>
    refuse(
      c,
      410,
      "protocol_v1_refused",
      `this share node speaks ${REPOSITORY_PROTOCOL}: tokens are scoped to one custos node; ` +
        "upgrade the custos node and configure its token with --repository-client NODE_KEY=TOKEN_FILE (docs/FORMATS.md §5.8)",
    ),
  );
}
