/**
 * The share node's repository routes in memory (custos-repository/v2,
 * docs/FORMATS.md §5.8): every refusal branch, each token scoped to its node,
 * and the configuration errors `repositoryRoutes` refuses at start.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { afterAll, describe, expect, it } from "vitest";
import { b64u, hex, randomBytes } from "../../src/crypto/bytes.js";
import { legacyShareFiles, repositoryRoutes } from "../../src/share-node/repository-routes.js";

const dir = mkdtempSync(join(tmpdir(), "custos-repo-routes-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const nodeA = randomBytes(32);
const nodeB = randomBytes(32);
const TA = "token-of-node-A-0123456789";
const TB = "token-of-node-B-0123456789";
const app = new Hono();
repositoryRoutes(app, {
  dir,
  clients: [
    { node: nodeA, token: TA },
    { node: nodeB, token: TB },
  ],
});

const initId = hex.encode(randomBytes(16));
const key = `${initId}/root/repository:r1`;
const url = `/v2/repository/shares/${encodeURIComponent(key)}`;
const doc = (node: Uint8Array, path = "root/repository:r1") =>
  JSON.stringify({
    format: "custos-repository-share/v1",
    initId,
    path,
    node: b64u.encode(node),
    enc: "x",
    ciphertext: "y",
  });
const put = (token: string, body: string, headers: Record<string, string> = {}) =>
  app.request(url, { method: "PUT", headers: { authorization: `Bearer ${token}`, ...headers }, body });
const get = (token: string, u = url) => app.request(u, { headers: { authorization: `Bearer ${token}` } });
const error = async (res: Response) => ((await res.json()) as { error: string }).error;

describe("repository routes v2", () => {
  it("stores and serves a node's own share; its shares live in its own directory", async () => {
    expect((await put(TB, doc(nodeB))).status).toBe(204);
    const res = await get(TB);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(doc(nodeB));
    expect(legacyShareFiles(join(dir, hex.encode(nodeB)))).toEqual([`${key.replaceAll("/", "+")}.share`]);
  });

  it("refuses another node's share to read or write (403), whatever the document says", async () => {
    expect(await error(await get(TA))).toBe("wrong_node");
    const byA = await put(TA, doc(nodeA));
    expect(byA.status).toBe(403);
    const posing = await put(TA, doc(nodeB));
    expect([posing.status, await error(posing)]).toEqual([403, "wrong_node"]);
    expect(await (await get(TB)).text()).toBe(doc(nodeB));
  });

  it("refuses bad tokens (401, closing), bad keys (400), big bodies (413, closing) and bad documents", async () => {
    const bad = await get("not-a-token-at-all-000000");
    expect([bad.status, bad.headers.get("connection")]).toEqual([401, "close"]);
    expect((await app.request(url)).status).toBe(401);
    expect(await error(await get(TA, `/v2/repository/shares/${encodeURIComponent("../x")}`))).toBe(
      "invalid_key",
    );
    const big = await put(TA, "x".repeat(5000));
    expect([big.status, big.headers.get("connection"), await error(big)]).toEqual([
      413,
      "close",
      "too_large",
    ]);
    const other = `${hex.encode(randomBytes(16))}/root/repository:r1`;
    const putOther = (body: string) =>
      app.request(`/v2/repository/shares/${encodeURIComponent(other)}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${TA}` },
        body,
      });
    expect(await error(await putOther("not json"))).toBe("invalid_share");
    expect(await error(await putOther(""))).toBe("invalid_share");
    expect(
      await error(await putOther(JSON.stringify({ format: "other/v1", node: "a", initId: "b", path: "c" }))),
    ).toBe("invalid_share");
    // Labelled for another key than the one it is stored under.
    expect(await error(await putOther(doc(nodeA)))).toBe("invalid_share");
    const none = await app.request(`/v2/repository/shares/${encodeURIComponent(other)}`, {
      headers: { authorization: `Bearer ${TA}` },
    });
    expect([none.status, await error(none)]).toEqual([404, "no_share"]);
  });

  it("answers protocol v1 with 410 and the reason", async () => {
    const res = await app.request(`/v1/repository/shares/${encodeURIComponent(key)}`, {
      headers: { authorization: `Bearer ${TA}` },
    });
    expect(res.status).toBe(410);
    expect(((await res.json()) as { message: string }).message).toContain(
      "--repository-client NODE_KEY=TOKEN_FILE",
    );
  });

  it("refuses a node given twice, a token given to two nodes, short tokens and bad keys", () => {
    const make = (clients: { node: Uint8Array; token: string }[]) => () =>
      repositoryRoutes(new Hono(), { dir, clients });
    expect(
      make([
        { node: nodeA, token: TA },
        { node: nodeA, token: TB },
      ]),
    ).toThrow("given twice");
    expect(
      make([
        { node: nodeA, token: TA },
        { node: nodeB, token: TA },
      ]),
    ).toThrow("two nodes");
    expect(make([{ node: nodeA, token: "short" }])).toThrow("at least 16");
    expect(make([{ node: randomBytes(31), token: TA }])).toThrow("32 bytes");
  });

  it("lists shares a v1 share node stored unscoped", () => {
    const legacy = mkdtempSync(join(tmpdir(), "custos-legacy-"));
    writeFileSync(join(legacy, `${key.replaceAll("/", "+")}.share`), "x");
    expect(legacyShareFiles(legacy)).toHaveLength(1);
    expect(legacyShareFiles(join(legacy, "absent"))).toEqual([]);
    rmSync(legacy, { recursive: true });
  });
});
