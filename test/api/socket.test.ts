/**
 * What only a real socket shows: body limits by declared Content-Length and
 * by counting a chunked body, against the real HTTP server.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_BODY_BYTES } from "../../src/api/app.js";
import { type ListeningNode, listen, openNode } from "../../src/api/server.js";

function post(
  url: string,
  body: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/keys/k/datakey`, { method: "POST", headers }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => {
        text += d.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("HTTP server on a socket", () => {
  let dir: string;
  let node: ListeningNode;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "custos-socket-"));
    node = await listen(await openNode({ dataDir: dir, log: pino({ level: "silent" }) }), "127.0.0.1", 0);
  });

  afterAll(async () => {
    await node?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const big = JSON.stringify({ purpose: "TREAT", pad: "x".repeat(MAX_BODY_BYTES) });

  it("refuses a body whose Content-Length is over the limit", async () => {
    const res = await post(node.url, big, {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(big)),
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error.code).toBe("body_too_large");
  });

  it("refuses a chunked body once it grows over the limit", async () => {
    const res = await post(node.url, big, {
      "content-type": "application/json",
      "transfer-encoding": "chunked",
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error.code).toBe("body_too_large");
  });

  it("answers sealed (not initialised) key routes with 503 over the socket too", async () => {
    const res = await post(node.url, "{}", { "content-type": "application/json", "content-length": "2" });
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body).error.code).toBe("not_initialized");
  });
});
