/**
 * The share-storage routes of a share node (docs/FORMATS.md §5.8): a custos
 * node stores the sealed shares of its custody tree's `repository` leaves
 * here and reads them back at unattended unseal. `PUT` and `GET
 * /v1/repository/shares/{key}`, bytes in and out, kept in a directory
 * repository behind the routes. The share node never sees a share in the
 * clear (each is HPKE-sealed to the asking node's repository key), so it is
 * trusted for availability only; a bearer token per custos node keeps others
 * from reading or overwriting, and is compared as a SHA-256 hash in constant
 * time. Kept apart from the threshold routes so the two grow independently on
 * the same process.
 */
import { createHash } from "node:crypto";
import type { Context, Hono, Next } from "hono";
import { constantTimeEqual } from "../crypto/bytes.js";
import { MAX_SHARE_BYTES, SHARE_KEY_RE, type ShareRepository } from "../repository/share-repository.js";

export interface RepositoryRouteDeps {
  repository: ShareRepository;
  /** Tokens allowed to store and read shares (at least 16 characters each). */
  tokens: string[];
}

const hash = (token: string) => new Uint8Array(createHash("sha256").update(token, "utf8").digest());

/** A named middleware: only a request with one of the configured bearer tokens passes. */
function requireToken(tokens: string[]) {
  if (tokens.some((t) => t.length < 16))
    throw new RangeError("repository tokens must be at least 16 characters");
  const hashes = tokens.map(hash);
  return async function repositoryToken(c: Context, next: Next) {
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer (\S+)$/.exec(header);
    const presented = m ? hash(m[1] as string) : new Uint8Array(32);
    let ok = false;
    for (const h of hashes) ok = constantTimeEqual(h, presented) || ok;
    if (!m || !ok) {
      return c.json({ error: "unauthorized", message: "a valid repository bearer token is required" }, 401);
    }
    await next();
  };
}

export function repositoryRoutes(app: Hono, deps: RepositoryRouteDeps): void {
  const auth = requireToken(deps.tokens);
  const keyOf = (c: Context): string | null => {
    const key = c.req.param("key") ?? "";
    return SHARE_KEY_RE.test(key) ? key : null;
  };
  const badKey = (c: Context) =>
    c.json({ error: "invalid_key", message: "the key must be '<init id>/<custody tree leaf path>'" }, 400);

  app.put("/v1/repository/shares/:key{.+}", auth, async (c) => {
    const key = keyOf(c);
    if (key === null) return badKey(c);
    const body = new Uint8Array(await c.req.arrayBuffer());
    if (body.length === 0 || body.length > MAX_SHARE_BYTES) {
      return c.json(
        { error: "invalid_share", message: `the share must be 1 to ${MAX_SHARE_BYTES} bytes` },
        400,
      );
    }
    await deps.repository.put(key, body);
    return c.body(null, 204);
  });

  app.get("/v1/repository/shares/:key{.+}", auth, async (c) => {
    const key = keyOf(c);
    if (key === null) return badKey(c);
    const share = await deps.repository.get(key);
    if (share === null)
      return c.json({ error: "not_found", message: "no share is stored under this key" }, 404);
    return c.body(Buffer.from(share), 200, { "content-type": "application/octet-stream" });
  });
}
